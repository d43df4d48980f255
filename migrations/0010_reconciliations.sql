-- Reconciliation runs: the ledger's provider legs against each provider's statement over a
-- window. A run is created PENDING with the job that performs it, in one transaction, and
-- finished (COMPLETED with its counts and mismatches as JSON, or FAILED with the reason) by
-- that job.
CREATE TABLE reconciliations (
    reconciliation_id TEXT PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    window_from       BIGINT NOT NULL,
    window_to         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    finished_at       BIGINT,
    checked           BIGINT NOT NULL DEFAULT 0,
    matched           BIGINT NOT NULL DEFAULT 0,
    mismatches        TEXT NOT NULL DEFAULT '[]',
    error             TEXT
);
CREATE INDEX ledger_transfers_created ON ledger_transfers (created_at);
