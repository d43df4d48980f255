-- Merchant webhooks: endpoints, the event outbox (written in the transition's transaction),
-- and every delivery attempt.

CREATE TABLE webhook_endpoints (
    endpoint_id           TEXT PRIMARY KEY,
    merchant_id           TEXT NOT NULL,
    url                   TEXT NOT NULL,
    -- JSON array of event types; empty = every event type
    events                TEXT NOT NULL,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    disabled_at           BIGINT,
    disabled_reason       TEXT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id);

CREATE TABLE events (
    event_id    TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    payment_id  TEXT,
    event_type  TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_payment ON events (payment_id, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    payment_id  TEXT,
    event_type  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_payment ON webhook_deliveries (payment_id, created_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
