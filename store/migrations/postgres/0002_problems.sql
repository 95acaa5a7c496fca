-- Instructors' problems with their answer keys, each course's tutoring policy,
-- and each learner's progress through each problem.

CREATE TABLE problems (
    course text NOT NULL,
    id text NOT NULL,
    statement text NOT NULL,
    answer text NOT NULL,
    accept jsonb NOT NULL DEFAULT '[]',
    policy text NOT NULL DEFAULT 'open' CHECK (policy IN ('open', 'hint_only')),
    pages jsonb NOT NULL DEFAULT '[]',
    updated_at double precision NOT NULL,
    updated_by text NOT NULL,
    PRIMARY KEY (course, id)
);

CREATE TABLE course_policies (
    course text PRIMARY KEY,
    mode text NOT NULL CHECK (mode IN ('open', 'hint_only')),
    hint_only_from double precision,
    hint_only_until double precision,
    updated_at double precision NOT NULL
);

-- Deleting a problem deletes every learner's progress on it.
CREATE TABLE problem_progress (
    user_id text NOT NULL,
    course text NOT NULL,
    problem text NOT NULL,
    rung integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    solved boolean NOT NULL DEFAULT false,
    updated_at double precision NOT NULL,
    PRIMARY KEY (user_id, course, problem),
    FOREIGN KEY (course, problem) REFERENCES problems (course, id) ON DELETE CASCADE
);

CREATE INDEX problem_progress_problem ON problem_progress (course, problem);
