-- Version 1 (PostgreSQL): the journal of raw bytes, messages and their status history.

CREATE TABLE journal (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- seq is the order of insertion, which breaks ties of created_at ("oldest first").
CREATE TABLE messages (
    traceer_id TEXT PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    conversatie_id TEXT NOT NULL,
    direction TEXT NOT NULL
        CHECK (direction IN ('from_participant', 'to_participant', 'to_insurer', 'from_insurer')),
    party TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES journal (sha256),
    size BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    filename TEXT,
    standard TEXT,
    invoice_number TEXT,
    payee TEXT,
    reply_to TEXT,
    reference_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    confirmed_at TIMESTAMPTZ,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    traceer_id TEXT NOT NULL REFERENCES messages (traceer_id),
    at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    code TEXT,
    description TEXT NOT NULL DEFAULT ''
);

CREATE INDEX message_statuses_by_message ON message_statuses (traceer_id, at, id);
