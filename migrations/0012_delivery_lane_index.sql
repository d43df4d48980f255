-- The delivery lane's claim index holds webhook deliveries only (both engines).
--
-- `jobs_kind_ready (kind, state, run_at)` let the delivery lane's claim read a range of due
-- deliveries instead of walking every due payment step, but it held an entry for every job:
-- each claim, reschedule and completion of a payment step moved an entry nobody looked up
-- through it. Partial on the delivery kind, it holds only the lane it serves; the claim's
-- `kind = 'webhook.deliver'` implies the index's condition, so both planners still use it.
DROP INDEX jobs_kind_ready;
CREATE INDEX jobs_delivery_ready ON jobs (state, run_at) WHERE kind = 'webhook.deliver';
