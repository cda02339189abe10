-- The ranker: exact dedup of control events (a replayed remove/ban must not apply twice,
-- it would erase scores that arrived after it) and per-user standing lookups across windows.
CREATE TABLE control_events (
    event_id        text PRIMARY KEY,
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    action          text NOT NULL CHECK (action IN ('remove_user', 'ban_user')),
    received_at     timestamptz NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX standings_competition_user ON standings (competition_id, user_id);
