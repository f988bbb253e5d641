-- Version 10 (SQLite): bulk actions. A batch is one case action (with one reason for all)
-- on the cases a filter selected when the administrator confirmed it; its items are those
-- case ids, in order, each with its outcome once done (NULL: not yet). The batch's state
-- says whether the background runner works on it.
CREATE TABLE admin_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    filter TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'finished')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_role TEXT NOT NULL,
    created_origin TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);

CREATE INDEX admin_batches_by_state ON admin_batches (state, id);

CREATE TABLE admin_batch_items (
    batch_id INTEGER NOT NULL REFERENCES admin_batches (id),
    position INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    outcome TEXT CHECK (outcome IN ('done', 'skipped', 'failed')),
    detail TEXT NOT NULL DEFAULT '',
    at TEXT,
    PRIMARY KEY (batch_id, position)
);
