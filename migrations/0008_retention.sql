-- Retention: the purges of old events and deliveries find their rows by age (cleared alerts
-- by the existing alerts_open index),
-- and the merchant-wide delivery log pages by (merchant, newest first) instead of scanning.
CREATE INDEX events_created ON events (created_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries (merchant_id, created_at, delivery_id);

-- The delivery lane's claim (kind = 'webhook.deliver', ready, due, oldest first) as a range
-- of its own: through jobs_ready it would walk every due payment step to find none.
CREATE INDEX jobs_kind_ready ON jobs (kind, state, run_at);
