-- Version 3 (PostgreSQL): the outbound queue. Each file for an insurer is a message
-- (direction to_insurer, its bytes in the journal) with one row here: where it stands, how
-- often it was tried, when it is due next (queued) or when a claimed attempt's lease ends
-- (sending), and the last error. Instances claim rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbound (
    traceer_id TEXT PRIMARY KEY REFERENCES messages (traceer_id),
    insurer TEXT NOT NULL,
    sender TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'sending', 'delivered', 'answered', 'parked')),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at TIMESTAMPTZ NOT NULL,
    first_attempt_at TIMESTAMPTZ,
    last_error TEXT,
    remote_id TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX outbound_due ON outbound (insurer, state, due_at);
