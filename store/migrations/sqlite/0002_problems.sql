-- Instructors' problems with their answer keys, each course's tutoring policy,
-- and each learner's progress through each problem.

CREATE TABLE problems (
    course TEXT NOT NULL,
    id TEXT NOT NULL,
    statement TEXT NOT NULL,
    answer TEXT NOT NULL,
    accept TEXT NOT NULL DEFAULT '[]',
    policy TEXT NOT NULL DEFAULT 'open' CHECK (policy IN ('open', 'hint_only')),
    pages TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (course, id)
);

CREATE TABLE course_policies (
    course TEXT PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('open', 'hint_only')),
    hint_only_from REAL,
    hint_only_until REAL,
    updated_at REAL NOT NULL
);

-- Deleting a problem deletes every learner's progress on it.
CREATE TABLE problem_progress (
    user_id TEXT NOT NULL,
    course TEXT NOT NULL,
    problem TEXT NOT NULL,
    rung INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    solved INTEGER NOT NULL DEFAULT 0 CHECK (solved IN (0, 1)),
    updated_at REAL NOT NULL,
    PRIMARY KEY (user_id, course, problem),
    FOREIGN KEY (course, problem) REFERENCES problems (course, id) ON DELETE CASCADE
);

CREATE INDEX problem_progress_problem ON problem_progress (course, problem);
