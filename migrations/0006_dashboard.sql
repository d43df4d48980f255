-- The operator dashboard lists every merchant's payments newest first, optionally in one
-- state, paging by the key (created_at, payment_id), and counts recent creations. These
-- indexes make each page one short index range however many payments exist. The
-- (state, created_at, payment_id) index has the plain state index's prefix, so it replaces
-- it and a transition still maintains the same number of indexes.
CREATE INDEX payments_created ON payments (created_at, payment_id);
CREATE INDEX payments_state_created ON payments (state, created_at, payment_id);
DROP INDEX payments_state;
