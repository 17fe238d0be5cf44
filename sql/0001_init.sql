-- 0001_init.sql: the whole schema of the mkdseg service.
-- Applied by `mkdseg migrate` (and at `mkdseg serve` start-up) inside one transaction, under an
-- advisory lock, and recorded in schema_migrations (created by the runner itself).
-- Never edit this file once released: the runner refuses to start when an applied migration's
-- checksum changed. Add sql/0002_*.sql instead. No BEGIN/COMMIT here: the runner owns the
-- transaction.

-- ---------------------------------------------------------------------------------------------
-- datasets: named collections of volumes of one modality.
CREATE TABLE datasets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    modality    text        NOT NULL CHECK (modality IN ('ct', 'mr')),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE datasets IS
    'A named collection of volumes of one modality (ct or mr), e.g. the labelled CT of a study.';

-- ---------------------------------------------------------------------------------------------
-- volumes: one image (and optionally its label map) in a dataset; blobs are content-addressed
-- files under the data directory, named by their SHA-256.
CREATE TABLE volumes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id    bigint      NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name          text        NOT NULL DEFAULT '' CHECK (length(name) <= 1000),
    modality      text        NOT NULL CHECK (modality IN ('ct', 'mr')),
    dims          integer[]   NOT NULL CHECK (cardinality(dims) = 3 AND 0 < ALL (dims)),
    spacing       double precision[] NOT NULL
                              CHECK (cardinality(spacing) = 3 AND 0 < ALL (spacing)),
    affine        double precision[] CHECK (affine IS NULL OR cardinality(affine) = 16),
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    path          text        NOT NULL CHECK (length(path) > 0),
    size_bytes    bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    label_sha256  text        CHECK (label_sha256 ~ '^[0-9a-f]{64}$'),
    label_path    text,
    label_stats   jsonb       CHECK (label_stats IS NULL OR jsonb_typeof(label_stats) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((label_sha256 IS NULL) = (label_path IS NULL)),
    UNIQUE (dataset_id, sha256)
);
CREATE INDEX volumes_sha256 ON volumes (sha256);
COMMENT ON TABLE volumes IS
    'One image volume (NIfTI) of a dataset with its optional label map: grid dims, voxel spacing '
    '(mm), affine, and the SHA-256 and path of the content-addressed blobs.';

-- ---------------------------------------------------------------------------------------------
-- jobs: the work queue (training, evaluation, ...). Claimed by workers with
-- FOR UPDATE SKIP LOCKED; a running job whose lease expired is claimed again.
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    state            text        NOT NULL DEFAULT 'queued'
                                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
                                                  'cancelled')),
    params           jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    progress         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(progress) = 'object'),
    result           jsonb,
    priority         integer     NOT NULL DEFAULT 0,
    worker           text,
    heartbeat_at     timestamptz,
    lease_expires_at timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    cancel_requested boolean     NOT NULL DEFAULT false,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'running' OR (worker IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);
CREATE INDEX jobs_claimable ON jobs (priority DESC, id) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_state_created ON jobs (state, created_at);
CREATE INDEX jobs_kind_created ON jobs (kind, created_at);
COMMENT ON TABLE jobs IS
    'The job queue: one row per training/evaluation job with its state machine '
    '(queued -> running -> succeeded|failed|cancelled), parameters, progress, worker lease and '
    'heartbeat, attempts and error.';

-- ---------------------------------------------------------------------------------------------
-- job_events: the progress log of a job (state changes, epochs, losses, checkpoints).
CREATE TABLE job_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    type       text        NOT NULL
                           CHECK (type IN ('state', 'progress', 'log', 'checkpoint', 'metric')),
    data       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job ON job_events (job_id, id);
COMMENT ON TABLE job_events IS
    'Append-only events of a job: state changes, progress (epoch, iteration, losses, ETA), '
    'checkpoints and log lines; streamed to clients as Server-Sent Events.';

-- ---------------------------------------------------------------------------------------------
-- models: immutable trained model versions (weights are a content-addressed safetensors blob).
CREATE TABLE models (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    method         text        NOT NULL CHECK (method ~ '^[a-z][a-z0-9_-]{0,39}$'),
    modality       text        CHECK (modality IN ('ct', 'mr')),
    config         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    metadata       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    weights_sha256 text        NOT NULL CHECK (weights_sha256 ~ '^[0-9a-f]{64}$'),
    weights_path   text        NOT NULL CHECK (length(weights_path) > 0),
    weights_size   bigint      NOT NULL DEFAULT 0 CHECK (weights_size >= 0),
    job_id         bigint      REFERENCES jobs (id) ON DELETE SET NULL,
    is_default     boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- at most one promoted (default) model
CREATE UNIQUE INDEX models_one_default ON models (is_default) WHERE is_default;
CREATE INDEX models_job ON models (job_id);
COMMENT ON TABLE models IS
    'Immutable model versions: training method, config, safetensors metadata, weights SHA-256 '
    'and path, the job that trained it; is_default marks the promoted model used by /segment.';

-- the parent datasets of a model (target / assistant / validation); RESTRICT keeps a dataset
-- from being deleted while a model uses it.
CREATE TABLE model_datasets (
    model_id   bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE RESTRICT,
    role       text   NOT NULL CHECK (role IN ('target', 'assistant', 'validation', 'train')),
    PRIMARY KEY (model_id, dataset_id, role)
);
CREATE INDEX model_datasets_dataset ON model_datasets (dataset_id);
COMMENT ON TABLE model_datasets IS
    'Which datasets a model was trained or validated on, and in which role.';

-- ---------------------------------------------------------------------------------------------
-- dice_results: evaluation results per model, dataset, volume and structure.
CREATE TABLE dice_results (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id   bigint           NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    dataset_id bigint           NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    volume_id  bigint           REFERENCES volumes (id) ON DELETE CASCADE,
    job_id     bigint           REFERENCES jobs (id) ON DELETE SET NULL,
    structure  text             NOT NULL CHECK (length(structure) BETWEEN 1 AND 64),
    dice       double precision NOT NULL CHECK (dice >= 0 AND dice <= 1),
    assd       double precision CHECK (assd >= 0),
    hd95       double precision CHECK (hd95 >= 0),
    created_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX dice_results_model_dataset ON dice_results (model_id, dataset_id, created_at);
CREATE INDEX dice_results_dataset ON dice_results (dataset_id, created_at);
COMMENT ON TABLE dice_results IS
    'Evaluation results: Dice, ASSD and HD95 (mm) of a model on one volume (volume_id NULL: the '
    'dataset mean) for one structure, with the evaluating job.';

-- ---------------------------------------------------------------------------------------------
-- inferences: every /segment call.
CREATE TABLE inferences (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id      bigint      REFERENCES models (id) ON DELETE SET NULL,
    request_id    text        CHECK (length(request_id) <= 64),
    input_name    text        NOT NULL DEFAULT '' CHECK (length(input_name) <= 1000),
    input_sha256  text        NOT NULL CHECK (input_sha256 ~ '^[0-9a-f]{64}$'),
    dims          integer[]   NOT NULL CHECK (cardinality(dims) = 3 AND 0 < ALL (dims)),
    spacing       double precision[] NOT NULL
                              CHECK (cardinality(spacing) = 3 AND 0 < ALL (spacing)),
    mask_sha256   text        CHECK (mask_sha256 ~ '^[0-9a-f]{64}$'),
    mask_path     text,
    structures    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(structures) = 'object'),
    dice          jsonb       CHECK (dice IS NULL OR jsonb_typeof(dice) = 'object'),
    timings_ms    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(timings_ms) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((mask_sha256 IS NULL) = (mask_path IS NULL))
);
CREATE INDEX inferences_created ON inferences (created_at);
CREATE INDEX inferences_model ON inferences (model_id);
COMMENT ON TABLE inferences IS
    'One row per segmentation: model, input SHA-256 and grid, the stored mask, per-structure '
    'voxel counts and volumes (mL), Dice when a label was given, and time per stage (ms).';

-- ---------------------------------------------------------------------------------------------
-- api_tokens: bearer tokens for MKDSEG_AUTH=on, stored as SHA-256 only.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    token_sha256 text        NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    prefix       text        NOT NULL DEFAULT '' CHECK (length(prefix) <= 16),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
COMMENT ON TABLE api_tokens IS
    'API bearer tokens: only the SHA-256 of each token is stored (plus a short prefix to tell '
    'tokens apart); a revoked token is refused.';
