-- Operations: rate pins, alerts, the admin audit log, dashboard sessions.

CREATE TABLE rate_pins (
    from_currency TEXT NOT NULL,
    to_currency   TEXT NOT NULL,
    rate          TEXT NOT NULL,
    pinned_at     BIGINT NOT NULL,
    PRIMARY KEY (from_currency, to_currency)
);

CREATE TABLE alerts (
    alert_id    TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- what the alert is about: the payment, endpoint or job id; one open alert per subject
    subject     TEXT NOT NULL,
    payment_id  TEXT,
    endpoint_id TEXT,
    job_id      TEXT,
    message     TEXT NOT NULL,
    since       BIGINT NOT NULL,
    raised_at   BIGINT NOT NULL,
    cleared_at  BIGINT
);
CREATE INDEX alerts_open ON alerts (cleared_at, kind);
CREATE INDEX alerts_subject ON alerts (kind, subject, cleared_at);

CREATE TABLE admin_audit (
    audit_id TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at);

CREATE TABLE dashboard_sessions (
    session_hash TEXT PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
