-- Version 19: a line's pregnancy and its claim are indexed only once it has them. Every
-- query by either names a value (=, IN, a join on it), so an entry for a line still
-- without one is never read; without those entries storing a line writes two index
-- entries fewer, and bundling it removes none (it only adds the two values).
DROP INDEX declaration_lines_pregnancy;

CREATE INDEX declaration_lines_pregnancy ON declaration_lines (pregnancy)
WHERE pregnancy IS NOT NULL;

DROP INDEX declaration_lines_claim;

CREATE INDEX declaration_lines_claim ON declaration_lines (claim_reference)
WHERE claim_reference IS NOT NULL;
