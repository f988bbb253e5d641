-- Version 6 (postgres): what bundling decided. Every integral line claimed (its factuurnummer,
-- NUM040 and reference, the outbound file it went in) and the original lines it absorbed;
-- the phases an administrator closed by hand; number sequences; and per original line
-- where it ended (state, why, a retourcode when returned, its claim or outbound file).
CREATE TABLE integral_claims (
    reference TEXT PRIMARY KEY,
    invoice_number TEXT NOT NULL,
    record_number INTEGER NOT NULL,
    outbound TEXT NOT NULL REFERENCES messages (traceer_id),
    insurer TEXT NOT NULL,
    pregnancy TEXT NOT NULL,
    phase TEXT NOT NULL,
    prestatie TEXT NOT NULL,
    amount BIGINT NOT NULL,
    credits TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE claim_absorbs (
    reference TEXT NOT NULL REFERENCES integral_claims (reference),
    traceer_id TEXT NOT NULL,
    record_number INTEGER NOT NULL,
    PRIMARY KEY (reference, traceer_id, record_number)
);

CREATE INDEX claim_absorbs_line ON claim_absorbs (traceer_id, record_number);

CREATE TABLE closed_phases (
    pregnancy TEXT NOT NULL,
    phase TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pregnancy, phase)
);

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

ALTER TABLE declaration_lines ADD COLUMN reason TEXT;
ALTER TABLE declaration_lines ADD COLUMN retourcode TEXT;
ALTER TABLE declaration_lines ADD COLUMN claim_reference TEXT;
ALTER TABLE declaration_lines ADD COLUMN outbound TEXT;
