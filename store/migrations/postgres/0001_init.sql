-- Users, tutoring sessions and their messages.
-- Times are epoch seconds as double precision so records round-trip exactly.

CREATE TABLE users (
    id text PRIMARY KEY,
    role text NOT NULL,
    created_at double precision NOT NULL,
    last_seen_at double precision NOT NULL
);

CREATE TABLE sessions (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id),
    course text NOT NULL,
    title text NOT NULL DEFAULT '',
    hint_level integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);

CREATE INDEX sessions_user_updated ON sessions (user_id, updated_at);

-- seq orders a session's messages: timestamps can tie or step backwards.
CREATE TABLE messages (
    id text PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    role text NOT NULL CHECK (role IN ('learner', 'tutor')),
    text text NOT NULL,
    mode text NOT NULL DEFAULT '',
    stream_id text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    sources jsonb NOT NULL DEFAULT '[]',
    model text NOT NULL DEFAULT '',
    cached boolean NOT NULL DEFAULT false,
    created_at double precision NOT NULL
);

CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq);
