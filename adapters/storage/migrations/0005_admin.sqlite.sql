-- Version 5 (SQLite): the administrator's workplace. Accounts (scrypt hashes with their
-- parameters; failed logins counted for throttling), sessions and API tokens (only the
-- SHA-256 of each token), the audit log (append-only, each entry hash-chained to the one
-- before; the head row holds the newest sequence number and hash, so that deleting the
-- newest entries shows too), and the cases' own records: their state and notes.
CREATE TABLE admin_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'administrator')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    last_failed_at TEXT
);

CREATE TABLE admin_sessions (
    digest TEXT PRIMARY KEY CHECK (length(digest) = 64),
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token')),
    user_name TEXT NOT NULL REFERENCES admin_users (name),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT ''
);

CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

CREATE TABLE admin_audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
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

-- Entries are never changed or removed by the gateway; these refuse it outright.
CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE admin_audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
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
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
);

CREATE TABLE admin_case_notes (
    id INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL,
    at TEXT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);

CREATE INDEX admin_case_notes_by_case ON admin_case_notes (case_id, at, id);
