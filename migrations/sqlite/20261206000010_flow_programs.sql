-- Flows as programs. A running run's step records are saved as they finish: each save
-- appends the records changed since the last one here (a long loop appends a little each time
-- instead of rewriting all its records); the run's end writes them all to runs.steps and
-- drops these.
CREATE TABLE run_steps (
    run_id  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    steps   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- A finished run whose outcome (run.succeeded, run.failed) is not in the event log yet.
ALTER TABLE runs ADD COLUMN announce SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX runs_to_announce ON runs (finished_at) WHERE announce = 1;
-- A flow's settings (time zone, concurrency, throttle, when to disable it), and how many of its
-- runs failed in a row.
ALTER TABLE flows ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE flows ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;
-- settings.maxConcurrency, where claiming a run can see it.
ALTER TABLE flows ADD COLUMN max_concurrency BIGINT;
