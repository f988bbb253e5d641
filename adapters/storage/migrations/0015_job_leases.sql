-- Version 15: one run of a job at a time across every gateway process sharing the store.
-- A job's lease names its holder (host, process id and a random part) and when it ends, in
-- milliseconds since the epoch on the database's own clock (so that the clocks of several
-- gateway hosts never matter). The holder renews it while it runs and gives it up when it
-- is done; an expired lease may be taken over.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
-- Every bundling run that settles a line raises its revision; a run records its outcome
-- only for lines still at the revision (and state) it read, so that two runs that read
-- the same open lines can never both claim them.
ALTER TABLE declaration_lines ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
