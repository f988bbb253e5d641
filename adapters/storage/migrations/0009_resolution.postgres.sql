-- Version 9 (postgres): what the administrator's resolutions need.
-- Per original line the pregnancy and phase bundling put it in and the kind of decision
-- (integral, monodisciplinary, bundle-broken, waiting), also for lines still waiting.
-- bundle_decisions: the latest decision per pregnancy, phase and insurer with its rule and
-- reasons (the explanation the case page shows); for a waiting phase what it waits for,
-- until when, and when it was expected to be complete (``overdue_on``).
-- broken_phases: phases an administrator broke by hand (their lines go monodisciplinarily).
-- integral_claims.corrects: the claimed line a corrected resubmission replaces, with the
-- fields changed (JSON) and who changed them.
ALTER TABLE declaration_lines ADD COLUMN pregnancy TEXT;
ALTER TABLE declaration_lines ADD COLUMN phase TEXT;
ALTER TABLE declaration_lines ADD COLUMN decision TEXT;

CREATE INDEX declaration_lines_pregnancy ON declaration_lines (pregnancy);
CREATE INDEX declaration_lines_claim ON declaration_lines (claim_reference);

CREATE TABLE bundle_decisions (
    pregnancy TEXT NOT NULL,
    phase TEXT NOT NULL,
    insurer TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    reasons TEXT NOT NULL,
    waiting_for TEXT,
    until DATE,
    overdue_on DATE,
    first_day DATE,
    decided_at TIMESTAMPTZ NOT NULL,
    since TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pregnancy, phase, insurer)
);

CREATE INDEX bundle_decisions_kind ON bundle_decisions (kind);

CREATE TABLE broken_phases (
    pregnancy TEXT NOT NULL,
    phase TEXT NOT NULL,
    broken_by TEXT NOT NULL,
    broken_at TIMESTAMPTZ NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (pregnancy, phase)
);

ALTER TABLE integral_claims ADD COLUMN corrects TEXT;
ALTER TABLE integral_claims ADD COLUMN changes TEXT;
ALTER TABLE integral_claims ADD COLUMN created_by TEXT;

CREATE INDEX integral_claims_corrects ON integral_claims (corrects);

-- The cases' own records take the states of the new actions.
ALTER TABLE admin_cases DROP CONSTRAINT admin_cases_state_check;

ALTER TABLE admin_cases ADD CONSTRAINT admin_cases_state_check CHECK (state IN ('open',
    'retried', 'written_off', 'resolved', 'resubmitted', 'broken', 'passed_on',
    'phase_closed'));
