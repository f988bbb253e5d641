-- Version 18 (sqlite): the BSN index once per woman instead of once per line. A BSN search
-- finds the women (keyed hashes of BSN and birth date) its keyed hash of the BSN names in
-- bsn_women, and their lines by the woman's index, which the bundler needs anyway; a
-- line's own bsn_index is kept (the search still checks it) but no longer indexed, so
-- storing a line updates one random index fewer. A pair is written with the lines that
-- carry it (adapters.storage.lines.link_bsn_txn) and removed when the hashes of the
-- last line that carried it are replaced (adapters.storage.lines.unlink_bsn_txn).
CREATE TABLE bsn_women (
    bsn_index TEXT NOT NULL,
    woman TEXT NOT NULL,
    PRIMARY KEY (bsn_index, woman)
) WITHOUT ROWID;

INSERT INTO bsn_women (bsn_index, woman)
SELECT DISTINCT bsn_index, woman FROM declaration_lines WHERE bsn_index IS NOT NULL;

DROP INDEX declaration_lines_bsn;

-- The lines the first search gives a BSN index (stored before version 11): found without a
-- scan, and an index entry for no other line.
CREATE INDEX declaration_lines_no_bsn ON declaration_lines (traceer_id, record_number)
WHERE bsn_index IS NULL;
