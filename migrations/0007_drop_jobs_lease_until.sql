-- Nothing ever wrote jobs.lease_until: a claimed job's lease end is its run_at (a crashed
-- worker's job is due again when the lease runs out). Drop the misleading column.
ALTER TABLE jobs DROP COLUMN lease_until;
