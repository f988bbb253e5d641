-- Version 2 (SQLite): payloads may be sealed (AES-GCM) in the journal; key_id names the
-- key that sealed them, NULL for bytes kept as they are.
ALTER TABLE journal ADD COLUMN key_id TEXT;
