-- Version 13 (SQLite): what the store knows of the key file it was written with, to refuse
-- another one at start. `name` 'index' holds a keyed hash (with the key file's index key)
-- of a fixed text: never a key, and useless without the key file.
CREATE TABLE encryption_checks (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
