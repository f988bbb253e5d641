-- Version 5 (PostgreSQL): the administrator's workplace. Accounts (scrypt hashes with their
-- parameters; failed logins counted for throttling), sessions and API tokens (only the
-- SHA-256 of each token), the audit log (append-only, each entry hash-chained to the one
-- before; the head row holds the newest sequence number and hash, so that deleting the
-- newest entries shows too, and is locked by each append so that instances append one at a
-- time), and the cases' own records: their state and notes.
CREATE TABLE admin_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'administrator')),
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    last_failed_at TIMESTAMPTZ
);

CREATE TABLE admin_sessions (
    digest TEXT PRIMARY KEY CHECK (length(digest) = 64),
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token')),
    user_name TEXT NOT NULL REFERENCES admin_users (name),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    origin TEXT NOT NULL DEFAULT ''
);

CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

CREATE TABLE admin_audit (
    seq BIGINT PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    detail TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX admin_audit_by_subject ON admin_audit (subject, seq) WHERE subject IS NOT NULL;

-- Entries are never changed or removed by the gateway; this refuses it outright.
CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;

CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only();

CREATE TABLE admin_audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO admin_audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE admin_cases (
    case_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'retried', 'written_off', 'resolved')),
    reason TEXT NOT NULL DEFAULT '',
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT NOT NULL
);

CREATE TABLE admin_case_notes (
    id BIGSERIAL PRIMARY KEY,
    case_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);

CREATE INDEX admin_case_notes_by_case ON admin_case_notes (case_id, at, id);
