-- clipsweep reference schema: the tables the worker reads.
--
-- The worker only ever SELECTs.  An app with its own tables points
-- CLIPSWEEP_JOBS_TABLE and CLIPSWEEP_CLIPS_TABLE at views with these
-- columns (see docs/PROTOCOL.md, "Data contract").
--
-- Keys are stored relative to the cube prefix, as an app's file fields
-- usually store them: 'public/uploads/42/original.mp4', not
-- 'abcd1234/public/uploads/42/original.mp4'.  The worker prepends the
-- prefix from CLOUDCUBE_URL.
--
-- Statuses are free text: apps have their own stage names.  Terminal
-- statuses are jobs: completed, failed, cancelled; clips: completed,
-- failed.  Anything else (NULL included) is active and protected.

CREATE TABLE IF NOT EXISTS jobs (
    id           bigint PRIMARY KEY,
    status       text,
    original_key text,
    audio_key    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS clips (
    id         bigint PRIMARY KEY,
    job_id     bigint NOT NULL REFERENCES jobs (id),
    status     text,
    key        text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The lookups job_cleanup makes: clips of a job, and who refers to a key.
CREATE INDEX IF NOT EXISTS clips_job_id_idx ON clips (job_id);
CREATE INDEX IF NOT EXISTS clips_key_idx ON clips (key);
CREATE INDEX IF NOT EXISTS jobs_original_key_idx ON jobs (original_key);
CREATE INDEX IF NOT EXISTS jobs_audio_key_idx ON jobs (audio_key);
