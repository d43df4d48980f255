-- The standalone simulated provider (`corridor sim-provider`) pushes one signed status
-- webhook per transfer once it settles. `notified_at` records when it was done with that
-- transfer (delivered, or given up after its retry schedule), so a restart neither loses
-- nor repeats notifications. The partial index keeps the "what is left to send" sweep cheap.
ALTER TABLE sim_transfers ADD COLUMN notified_at BIGINT;
CREATE INDEX sim_transfers_unnotified ON sim_transfers (settle_at) WHERE notified_at IS NULL;
