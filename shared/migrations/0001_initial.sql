-- Competitions, every accepted event (exact dedup by event_id), and current standings.
CREATE TABLE competitions (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    sort_order  text NOT NULL CHECK (sort_order IN ('desc', 'asc')),
    operator    text NOT NULL CHECK (operator IN ('best', 'latest', 'sum')),
    reset       text NOT NULL CHECK (reset IN ('none', 'daily', 'weekly', 'monthly')),
    timezone    text NOT NULL DEFAULT 'UTC',
    starts_at   timestamptz,
    ends_at     timestamptz,
    max_value   double precision,
    visibility  text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE score_events (
    event_id        text PRIMARY KEY,
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    value           double precision NOT NULL,
    event_ts        timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    applied_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX score_events_competition_user ON score_events (competition_id, user_id);

CREATE TABLE standings (
    competition_id  text NOT NULL,
    window_label    text NOT NULL,
    user_id         text NOT NULL,
    score           double precision NOT NULL,
    reached_at      timestamptz NOT NULL,
    last_event_ts   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (competition_id, window_label, user_id)
);

CREATE TABLE banned_users (
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    banned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (competition_id, user_id)
);
