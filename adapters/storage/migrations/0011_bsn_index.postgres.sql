-- Version 11 (postgres): a keyed hash of the client's BSN alone with every declaration line
-- (HMAC-SHA256 with the key file's index key, like `woman`; an unkeyed SHA-256 without a
-- key file), so that the administrator can find a client's lines by BSN without the
-- number being stored. NULL for lines stored before this version: the first search fills it in
-- from the sealed `client` value (adapters.storage.search.backfill_bsn_index_txn).
ALTER TABLE declaration_lines ADD COLUMN bsn_index TEXT;

CREATE INDEX declaration_lines_bsn ON declaration_lines (bsn_index);

-- The other keys the administrator searches on.
CREATE INDEX messages_by_invoice ON messages (invoice_number) WHERE invoice_number IS NOT NULL;

CREATE INDEX declaration_lines_reference ON declaration_lines (reference);

CREATE INDEX declaration_lines_outbound ON declaration_lines (outbound) WHERE outbound IS NOT NULL;

CREATE INDEX integral_claims_invoice ON integral_claims (invoice_number);
