-- Version 16 (postgres): the codes of a hospital line other than its declaratiecode that the
-- rules match on: the DBC zorgproduct code (9 digits) and the zorgactiviteit codes
-- (space-separated). NULL for other standards and for lines stored before this version.
ALTER TABLE declaration_lines ADD COLUMN zorgproduct TEXT;

ALTER TABLE declaration_lines ADD COLUMN zorgactiviteiten TEXT;
