-- Version 20: the key indexes of the sealed tables hold the sealed rows only. They serve
-- the count of the rows each key seals at start (key_id IS NOT NULL ... GROUP BY key_id)
-- and the look-up of a row sealed with a given key (key_id = ?); both name a key, so no
-- entry for a row stored without a key file (key_id NULL: every row of a gateway without
-- one) was ever read. Re-encryption finds the rows not under the current key in the
-- tables' own order, not by these indexes.
-- Without a key file, storing an upload then writes one index entry per line fewer (and
-- one for the payload).
DROP INDEX declaration_lines_by_key;

CREATE INDEX declaration_lines_by_key ON declaration_lines (key_id)
WHERE key_id IS NOT NULL;

DROP INDEX journal_by_key;

CREATE INDEX journal_by_key ON journal (key_id)
WHERE key_id IS NOT NULL;
