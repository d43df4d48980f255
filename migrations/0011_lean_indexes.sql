-- Fewer index entries per payment on the write path (both engines).
--
-- A provider reference is NULL until its leg is initiated (and a reversal's stays NULL for
-- nearly every payment), yet a plain index holds an entry for every row: each new payment
-- wrote three entries nobody could look up. The partial indexes hold only set references;
-- the lookups (`col = $1`) imply `col IS NOT NULL`, so both planners still use them.
DROP INDEX payments_onramp_reference;
DROP INDEX payments_offramp_reference;
DROP INDEX payments_reversal_reference;
CREATE INDEX payments_onramp_reference ON payments (onramp_provider, onramp_reference)
    WHERE onramp_reference IS NOT NULL;
CREATE INDEX payments_offramp_reference ON payments (offramp_provider, offramp_reference)
    WHERE offramp_reference IS NOT NULL;
CREATE INDEX payments_reversal_reference ON payments (reversal_reference)
    WHERE reversal_reference IS NOT NULL;

-- A reconciliation window finds the payments whose provider legs were opened in it: the
-- transfer that is each leg's line (USDC bought, payout, refund, returned payout), not the
-- fees and FX postings opened with them. Three entries per payment instead of eight.
DROP INDEX ledger_transfers_created;
CREATE INDEX ledger_transfers_leg_opened ON ledger_transfers (created_at)
    WHERE role IN ('onramp.usdc', 'offramp.payout', 'refund.source', 'return.payout');
