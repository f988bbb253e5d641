-- Version 8 (sqlite): payloads expire. A journal row whose payload was pruned keeps its
-- sha256 and size (the messages naming it, their statuses and the factuurnummers stay for
-- the audit trail and uniqueness) but its bytes are gone: pruned_at says when.
ALTER TABLE journal ADD COLUMN pruned_at TEXT;
