-- Corridor schema. Portable between SQLite and PostgreSQL: TEXT and BIGINT only, instants as
-- Unix milliseconds, money as integer minor units, rates as decimal text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE merchants (
    merchant_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (merchant_id),
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE quotes (
    quote_id        TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    from_currency   TEXT NOT NULL,
    to_currency     TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    platform_fee    BIGINT NOT NULL,
    onramp_fee      BIGINT NOT NULL,
    offramp_fee     BIGINT NOT NULL,
    total_fees      BIGINT NOT NULL,
    mid_rate        TEXT NOT NULL,
    exchange_rate   TEXT NOT NULL,
    payout          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    payment_id      TEXT UNIQUE
);
CREATE INDEX quotes_expires ON quotes (expires_at);

CREATE TABLE payments (
    payment_id          TEXT PRIMARY KEY,
    merchant_id         TEXT NOT NULL,
    quote_id            TEXT NOT NULL UNIQUE REFERENCES quotes (quote_id),
    state               TEXT NOT NULL,
    version             BIGINT NOT NULL,
    amount              BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    payout_amount       BIGINT NOT NULL,
    payout_currency     TEXT NOT NULL,
    exchange_rate       TEXT NOT NULL,
    mid_rate            TEXT NOT NULL,
    platform_fee        BIGINT NOT NULL,
    onramp_fee          BIGINT NOT NULL,
    offramp_fee         BIGINT NOT NULL,
    total_fees          BIGINT NOT NULL,
    source_account      TEXT NOT NULL,
    destination_account TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    state_since         BIGINT NOT NULL,
    completed_at        BIGINT,
    -- set by the worker before it calls the onramp: from then on cancel must fail
    onramp_claimed_at   BIGINT,
    failure_code        TEXT,
    failure_message     TEXT,
    onramp_provider     TEXT,
    onramp_reference    TEXT,
    onramp_status       TEXT,
    onramp_amount       BIGINT,
    offramp_provider    TEXT,
    offramp_reference   TEXT,
    offramp_status      TEXT,
    offramp_amount      BIGINT,
    -- the market rate when the offramp was initiated: quoted vs executed is the platform's gain or loss
    executed_rate       TEXT,
    reversal_reference  TEXT,
    refund_amount       BIGINT
);
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at, payment_id);
CREATE INDEX payments_state ON payments (state);

CREATE TABLE payment_history (
    payment_id TEXT NOT NULL REFERENCES payments (payment_id),
    seq        BIGINT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (payment_id, seq),
    -- the state graph is acyclic: a payment enters each state at most once
    UNIQUE (payment_id, to_state)
);

CREATE TABLE idempotency_keys (
    merchant_id     TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    locked_until    BIGINT,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency_keys (created_at);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payment_id   TEXT,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    run_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    failed_at    BIGINT
);
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE INDEX jobs_payment ON jobs (payment_id);

CREATE TABLE sim_transfers (
    reference      TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    payment_id     TEXT NOT NULL,
    leg            TEXT NOT NULL,
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    settle_at      BIGINT NOT NULL,
    initiate_calls BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (payment_id, leg)
);
