-- Version 13 (SQLite): what the store knows of the key file it was written with, to refuse
-- another one at start. `name` 'index' holds a keyed hash (with the key file's index key)
-- of a fixed text: never a key, and useless without the key file.
CREATE TABLE encryption_checks (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

-- The rows each key seals are counted at every start (and re-encryption looks for the
-- rows not under the current key): both by key id.
CREATE INDEX journal_by_key ON journal (key_id);

CREATE INDEX declaration_lines_by_key ON declaration_lines (key_id);
