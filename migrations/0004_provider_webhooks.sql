-- Inbound provider webhooks: ids already processed (deduplication), and lookups of a
-- payment by its provider reference.

CREATE TABLE provider_webhooks (
    provider    TEXT NOT NULL,
    webhook_id  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, webhook_id)
);
CREATE INDEX provider_webhooks_received ON provider_webhooks (received_at);

CREATE INDEX payments_onramp_reference ON payments (onramp_provider, onramp_reference);
CREATE INDEX payments_offramp_reference ON payments (offramp_provider, offramp_reference);
CREATE INDEX payments_reversal_reference ON payments (reversal_reference);
