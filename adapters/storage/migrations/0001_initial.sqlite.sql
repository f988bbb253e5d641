-- Version 1 (SQLite): the journal of raw bytes, messages and their status history.
-- Timestamps are UTC ISO-8601 text of fixed width (see database.encode_timestamp), so
-- they sort like the instants they name.

CREATE TABLE journal (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- seq is the order of insertion, which breaks ties of created_at ("oldest first"). It is
-- the rowid, so on SQLite it is the integer key and traceer_id a unique column.
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    traceer_id TEXT NOT NULL UNIQUE,
    conversatie_id TEXT NOT NULL,
    direction TEXT NOT NULL
        CHECK (direction IN ('from_participant', 'to_participant', 'to_insurer', 'from_insurer')),
    party TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES journal (sha256),
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    filename TEXT,
    standard TEXT,
    invoice_number TEXT,
    payee TEXT,
    reply_to TEXT,
    reference_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    confirmed_at TEXT,
    idempotency_key TEXT NOT NULL UNIQUE
);

-- A factuurnummer is used once per payee (Vektis: "factuurnummer declarant" is unique).
CREATE UNIQUE INDEX messages_invoice_per_payee ON messages (payee, invoice_number)
    WHERE direction = 'from_participant' AND invoice_number IS NOT NULL;

-- What waits for a party to fetch it stays small however long the history grows.
CREATE INDEX messages_waiting ON messages (party, direction, created_at, seq)
    WHERE confirmed_at IS NULL;

CREATE INDEX messages_by_party ON messages (party, direction, created_at, seq);

CREATE INDEX messages_by_conversation ON messages (conversatie_id, created_at, seq);

CREATE INDEX messages_by_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;

CREATE INDEX messages_by_sha256 ON messages (sha256);

CREATE TABLE message_statuses (
    id INTEGER PRIMARY KEY,
    traceer_id TEXT NOT NULL REFERENCES messages (traceer_id),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    code TEXT,
    description TEXT NOT NULL DEFAULT ''
);

CREATE INDEX message_statuses_by_message ON message_statuses (traceer_id, at, id);
