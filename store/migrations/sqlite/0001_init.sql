-- Users, tutoring sessions and their messages.
-- Times are epoch seconds as REAL so records round-trip exactly.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    course TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    hint_level INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE INDEX sessions_user_updated ON sessions (user_id, updated_at);

-- seq orders a session's messages: timestamps can tie or step backwards.
-- SQLite has no sequence outside INTEGER PRIMARY KEY, so the store numbers
-- each session's messages itself (one writer at a time makes that safe).
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('learner', 'tutor')),
    text TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT '',
    stream_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    sources TEXT NOT NULL DEFAULT '[]',
    model TEXT NOT NULL DEFAULT '',
    cached INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1)),
    created_at REAL NOT NULL
);

CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq);
