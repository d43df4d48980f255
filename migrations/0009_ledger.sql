-- The double-entry ledger: every movement of a payment's money, one row per transfer.
--
-- A transfer moves `amount` minor units of `currency` from `debit_account` to
-- `credit_account` (both of that currency: an account's name ends with it). It is written
-- PENDING while its leg is in flight and resolved once, to POSTED or VOIDED; nothing else
-- about it ever changes, and a posted transfer is final (a correction is a new transfer).
-- A payment has at most one transfer per role (`fee.platform`, `offramp.payout`, …): the key
-- makes opening one twice impossible, and it is also how a payment's transfers are read.
CREATE TABLE ledger_transfers (
    payment_id     TEXT NOT NULL,
    role           TEXT NOT NULL,
    debit_account  TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    currency       TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
    created_at     BIGINT NOT NULL,
    resolved_at    BIGINT,
    CHECK (debit_account <> credit_account),
    PRIMARY KEY (payment_id, role)
);
