-- Version 4 (sqlite): the prestatie lines of accepted declaration files, stored with the
-- upload in one transaction. The client's BSN and birth date are kept only inside
-- `client` (sealed with the key file's current key when there is one: key_id names it);
-- `woman` is a keyed hash of BSN and birth date, so that a woman's lines are found without
-- the numbers themselves. `state` is where the line stands in bundling.
CREATE TABLE declaration_lines (
    traceer_id TEXT NOT NULL REFERENCES messages (traceer_id),
    record_number INTEGER NOT NULL,
    participant TEXT NOT NULL,
    standard TEXT NOT NULL,
    woman TEXT NOT NULL,
    client BLOB NOT NULL,
    key_id TEXT,
    insurer TEXT NOT NULL,
    prestatiecodelijst TEXT NOT NULL,
    prestatiecode TEXT NOT NULL,
    prestatie_date TEXT NOT NULL,
    prestatie_end_date TEXT,
    amount INTEGER,
    reference TEXT NOT NULL,
    previous_reference TEXT,
    performer TEXT,
    state TEXT NOT NULL DEFAULT 'open',
    PRIMARY KEY (traceer_id, record_number)
);

CREATE INDEX declaration_lines_woman ON declaration_lines (woman);
CREATE INDEX declaration_lines_state ON declaration_lines (state);
