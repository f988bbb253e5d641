-- Version 19: a line's pregnancy and its claim are indexed only once it has them, and its
-- state only while it is open. Every query by pregnancy or claim names a value (=, IN, a
-- join on it), and every query that finds lines by their state asks for the open lines
-- (state = 'open', written out: a parameter would not find a partial index; the others
-- that name a state find their lines by key or claim first), so no entry left out was
-- ever read.
-- Storing a line writes two index entries fewer; bundling it removes its open entry and
-- adds its pregnancy and claim, instead of also removing two empty ones and adding an
-- entry for its new state. The state index then holds the open lines only.
DROP INDEX declaration_lines_pregnancy;

CREATE INDEX declaration_lines_pregnancy ON declaration_lines (pregnancy)
WHERE pregnancy IS NOT NULL;

DROP INDEX declaration_lines_claim;

CREATE INDEX declaration_lines_claim ON declaration_lines (claim_reference)
WHERE claim_reference IS NOT NULL;

DROP INDEX declaration_lines_state;

CREATE INDEX declaration_lines_open ON declaration_lines (state)
WHERE state = 'open';
