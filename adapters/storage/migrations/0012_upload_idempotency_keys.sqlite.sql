-- Version 12 (SQLite): the EPDs' own Idempotency-Key on POST /berichten, per participant.
-- A key names the message its first upload became (or, for bytes stored before, the
-- message they are) and the SHA-256 of those bytes: the same key with other bytes is a
-- conflict. Kept as long as the message; one row per (party, key).
CREATE TABLE upload_idempotency_keys (
    party TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    traceer_id TEXT NOT NULL REFERENCES messages (traceer_id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (party, idempotency_key)
);
