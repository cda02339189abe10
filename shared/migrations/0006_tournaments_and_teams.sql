-- Issue #14: tournaments. A competition may require players to join it first
-- (join_required), cap how many may join (max_entrants) and cap how many events of a user
-- apply per window (max_attempts: the event's period window, or alltime without a reset).
ALTER TABLE competitions
    ADD COLUMN join_required boolean NOT NULL DEFAULT false,
    ADD COLUMN max_entrants integer CHECK (max_entrants > 0),
    ADD COLUMN max_attempts integer CHECK (max_attempts > 0);

-- Who joined, and when. A score counts in a join_required competition when its user is an
-- entrant as the ranker applies it (the verdict is then final: refused_events below). Joins
-- are written by ingest under the competition row's lock (capacity is never exceeded by
-- concurrent joins on any number of replicas).
CREATE TABLE entrants (
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    joined_at       timestamptz NOT NULL,
    PRIMARY KEY (competition_id, user_id)
);

-- Per (competition, attempt window, user): how many of the user's score events applied
-- since the user's last removal. Written by the ranker in the batch's transaction, like the
-- standings it goes with.
CREATE TABLE attempts (
    competition_id  text NOT NULL,
    window_label    text NOT NULL,
    user_id         text NOT NULL,
    attempts        integer NOT NULL CHECK (attempts > 0),
    PRIMARY KEY (competition_id, user_id, window_label)
);

-- Issue #14: team boards. `teams` is null (no team board) or {"aggregate": "sum"|"best"|"mean"}.
-- A user's team is the team_id of their latest applied event that carried one (team_members,
-- written by the ranker in the batch's transaction). The team board of a competition is kept
-- like a competition of its own, under the board id "<competition id>~teams" ('~' is no
-- identifier character, so no competition can have that id): its standings (user_id = team id)
-- in `standings`, its version in `standings_versions`, its Redis keys under that id; so every
-- rebuild, heal and reconcile path covers it (shared/teams.py).
ALTER TABLE competitions ADD COLUMN teams jsonb;
ALTER TABLE score_events ADD COLUMN team_id text;
CREATE TABLE team_members (
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    team_id         text NOT NULL,
    PRIMARY KEY (competition_id, user_id)
);
CREATE INDEX team_members_team ON team_members (competition_id, team_id);

-- Scores refused for a reason that depends on state that changes later (not_joined: the user
-- may join; attempts_exhausted: a removal gives fresh attempts). The verdict is recorded with
-- the batch, so a replayed batch (a ranker that crashed before committing its offsets) and
-- any later record with the same event_id get the same verdict instead of being judged again:
-- an event id has one fate. Rows older than the dedup horizon go with `podium prune`.
CREATE TABLE refused_events (
    event_id        text PRIMARY KEY,
    competition_id  text NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('not_joined', 'attempts_exhausted')),
    event_ts        timestamptz NOT NULL
);
CREATE INDEX refused_events_ts ON refused_events (event_ts);
