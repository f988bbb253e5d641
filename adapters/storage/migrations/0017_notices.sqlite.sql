-- Notices (SQLite): which case went out in which digest over which notice channel, so that
-- no case is ever noticed twice over one channel. A digest's rows are written before it is
-- sent ('sending'), marked 'sent' once delivered and deleted when delivery failed (the cases
-- go in the next digest); 'sending' rows left by a process that died while sending are
-- marked 'unconfirmed' by the next digest run and never sent again.
CREATE TABLE notices_sent (
    channel TEXT NOT NULL,
    case_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'unconfirmed')),
    at TEXT NOT NULL,
    PRIMARY KEY (channel, case_id)
);

CREATE INDEX notices_sent_by_digest ON notices_sent (digest);
