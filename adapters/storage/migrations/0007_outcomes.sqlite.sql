-- Version 7 (sqlite): what the insurer said about every original line. outcome is granted,
-- rejected (passed on to the participant) or review (rejected, in the IGO's queue);
-- granted_amount what the distribution model gives the participant for it;
-- outcome_codes the insurer's retourcodes (space-separated); answered_in the retour
-- message to the participant that carries the answer.
ALTER TABLE declaration_lines ADD COLUMN outcome TEXT;
ALTER TABLE declaration_lines ADD COLUMN granted_amount INTEGER;
ALTER TABLE declaration_lines ADD COLUMN outcome_codes TEXT;
ALTER TABLE declaration_lines ADD COLUMN answered_in TEXT;
