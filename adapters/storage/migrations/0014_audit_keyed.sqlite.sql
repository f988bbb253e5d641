-- Version 14 (sqlite): the audit chain keyed (an HMAC with a key derived from the key file).
-- `keyed_from` is the first entry whose hash is keyed (NULL: none yet; entries before it
-- keep their plain SHA-256, and the first keyed entry covers them); `mac` is the head's own
-- HMAC over its number, hash and keyed_from, so that the head cannot be moved without the key.
ALTER TABLE admin_audit_head ADD COLUMN keyed_from INTEGER;

ALTER TABLE admin_audit_head ADD COLUMN mac TEXT;
