-- Smaller rows in the two tables every step of a payment writes (both engines).
--
-- A ledger transfer named both its accounts in full: `merchant:mer_<uuid>:funding:USD` is 62
-- bytes, and it is written into four of a payment's eight transfers — a third of the bytes a
-- completed payment kept. Accounts are now rows of their own, written once, and a transfer
-- holds their ids; its currency is its accounts' (`ledger_accounts.currency`).
--
-- The ids are small integers the store assigns when an account is first used (the next after
-- the largest; `store::ledger` says how a race between two writers resolves). A transfer's
-- ids are not declared foreign keys: the unit of work that writes a transfer creates its
-- accounts first, and a declared key would cost a lookup (and on PostgreSQL a share lock on
-- the hot merchant account's row) for every transfer written.
CREATE TABLE ledger_accounts (
    account_id BIGINT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    currency   TEXT NOT NULL
);
INSERT INTO ledger_accounts (account_id, name, currency)
SELECT ROW_NUMBER() OVER (ORDER BY name), name, currency
FROM (
    SELECT debit_account AS name, currency FROM ledger_transfers
    UNION
    SELECT credit_account AS name, currency FROM ledger_transfers
) AS named;

CREATE TABLE ledger_transfers_by_id (
    payment_id  TEXT NOT NULL,
    role        TEXT NOT NULL,
    debit_id    BIGINT NOT NULL,
    credit_id   BIGINT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    status      TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    CHECK (debit_id <> credit_id),
    PRIMARY KEY (payment_id, role)
);
INSERT INTO ledger_transfers_by_id
    (payment_id, role, debit_id, credit_id, amount, status, created_at, resolved_at)
SELECT t.payment_id, t.role, d.account_id, c.account_id, t.amount, t.status, t.created_at,
       t.resolved_at
FROM ledger_transfers t
JOIN ledger_accounts d ON d.name = t.debit_account
JOIN ledger_accounts c ON c.name = t.credit_account;
DROP TABLE ledger_transfers;
ALTER TABLE ledger_transfers_by_id RENAME TO ledger_transfers;
CREATE INDEX ledger_transfers_leg_opened ON ledger_transfers (created_at)
    WHERE role IN ('onramp.usdc', 'offramp.payout', 'refund.source', 'return.payout');

-- A payment's history was keyed by `(payment_id, seq)` with a second unique index on
-- `(payment_id, to_state)`, the guard that a payment enters each state at most once: two
-- entries for every row, the second a tenth of a payment's bytes. Keyed by the guard itself,
-- the row needs one. `seq` keeps the order (a payment's rows are read sorted by it: a handful);
-- that it is unique per payment follows from the compare-and-set on the payment's version
-- that every transition row is written under.
CREATE TABLE payment_history_by_state (
    payment_id TEXT NOT NULL REFERENCES payments (payment_id),
    seq        BIGINT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (payment_id, to_state)
);
INSERT INTO payment_history_by_state (payment_id, seq, from_state, to_state, at, reason)
SELECT payment_id, seq, from_state, to_state, at, reason FROM payment_history;
DROP TABLE payment_history;
ALTER TABLE payment_history_by_state RENAME TO payment_history;
