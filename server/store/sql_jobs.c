/* sql_jobs.c: the statements about jobs, job_events (sql.h). */
#include "sql.h"

#define JOB_JSON                                                                                   \
    "json_build_object('id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, "         \
    "'progress', j.progress, 'result', j.result, 'attempts', j.attempts, 'worker', j.worker, "     \
    "'cancel_requested', j.cancel_requested, 'error', j.error, 'model_id', "                       \
    "(j.result->>'model_id')::bigint, 'created_at', j.created_at, 'started_at', j.started_at, "    \
    "'finished_at', j.finished_at)"

const db_stmt sql_jobs_get = {"jobs_get",
                              "SELECT " JOB_JSON "::text FROM jobs j WHERE j.id = $1::bigint", 1};

const db_stmt sql_jobs_list = {
    "jobs_list",
    "SELECT json_build_object('jobs', coalesce(json_agg(x.o ORDER BY x.id DESC), '[]'))::text FROM "
    "(SELECT j.id, " JOB_JSON
    " AS o FROM jobs j WHERE ($1 = '' OR j.state = $1) ORDER BY j.id DESC "
    "LIMIT 200) x",
    1};

const db_stmt sql_jobs_cancel = {
    "jobs_cancel",
    "WITH q AS (UPDATE jobs SET state = 'cancelled', cancel_requested = true, finished_at = now(), "
    "updated_at = now(), error = 'cancelled on request' WHERE id = $1::bigint AND state = 'queued' "
    "RETURNING id), r AS (UPDATE jobs SET cancel_requested = true, updated_at = now() WHERE id = "
    "$1::bigint AND state = 'running' RETURNING id), e AS (INSERT INTO job_events (job_id, type, "
    "data) "
    "SELECT id, 'state', '{\"state\":\"cancelled\",\"error\":\"cancelled on request\"}'::jsonb "
    "FROM q "
    "UNION ALL SELECT id, 'log', '{\"message\":\"cancel requested\"}'::jsonb FROM r) "
    "SELECT (SELECT state FROM jobs WHERE id = $1::bigint), (SELECT count(*) FROM q) + (SELECT "
    "count(*) "
    "FROM r), pg_notify('mkdseg_job_events', $1::text)",
    1};

const db_stmt sql_jobs_get_brief = {
    "jobs_get_brief",
    "SELECT json_build_object('id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, "
    "'progress', j.progress, 'attempts', j.attempts, 'error', j.error, 'model_id', "
    "(j.result->>'model_id')::bigint, 'created_at', j.created_at, 'started_at', j.started_at, "
    "'finished_at', j.finished_at)::text FROM jobs j WHERE j.id = $1::bigint",
    1};

const db_stmt sql_jobs_count_by_state = {
    "jobs_count_by_state",
    "SELECT s.state, count(j.id) FROM unnest(ARRAY['queued','running','succeeded','failed',"
    "'cancelled']) AS s(state) LEFT JOIN jobs j ON j.state = s.state GROUP BY s.state ORDER BY 1",
    0};

const db_stmt sql_jobs_enqueue = {
    "jobs_enqueue",
    "WITH j AS (INSERT INTO jobs (kind, params, priority, max_attempts) "
    "VALUES ($1, $2::jsonb, $3::int, $4::int) RETURNING id, kind), "
    "e AS (INSERT INTO job_events (job_id, type, data) "
    "SELECT id, 'state', '{\"state\":\"queued\"}'::jsonb FROM j) "
    "SELECT id, pg_notify('mkdseg_jobs', kind) FROM j",
    4};

const db_stmt sql_jobs_progress = {
    "jobs_progress",
    "WITH u AS (UPDATE jobs SET progress = $3::jsonb, heartbeat_at = now(), "
    "lease_expires_at = now() + make_interval(secs => $4::int), updated_at = now() "
    "WHERE id = $1::bigint AND worker = $2 AND state = 'running' "
    "RETURNING id, cancel_requested), "
    "e AS (INSERT INTO job_events (job_id, type, data) "
    "SELECT id, 'progress', $3::jsonb FROM u) "
    "SELECT cancel_requested, pg_notify('mkdseg_job_events', id::text) FROM u",
    4};

const db_stmt sql_jobs_requeue = {
    "jobs_requeue",
    "WITH u AS (UPDATE jobs SET state = 'queued', worker = NULL, lease_expires_at = NULL, "
    "updated_at = now() WHERE id = $1::bigint AND worker = $2 AND state = 'running' "
    "RETURNING id, kind), e AS (INSERT INTO job_events (job_id, type, data) "
    "SELECT id, 'state', $3::jsonb FROM u) "
    "SELECT pg_notify('mkdseg_jobs', kind), pg_notify('mkdseg_job_events', id::text) FROM u",
    3};

const db_stmt sql_jobs_finish = {
    "jobs_finish",
    "WITH u AS (UPDATE jobs SET state = $3, result = $4::jsonb, error = $5, "
    "finished_at = now(), updated_at = now() "
    "WHERE id = $1::bigint AND worker = $2 AND state = 'running' RETURNING id), "
    "e AS (INSERT INTO job_events (job_id, type, data) SELECT id, 'state', $6::jsonb FROM u) "
    "SELECT pg_notify('mkdseg_job_events', id::text) FROM u",
    6};

const db_stmt sql_jobs_claim = {
    "jobs_claim",
    "WITH c AS (UPDATE jobs SET state = 'running', worker = $1, "
    "attempts = attempts + 1, heartbeat_at = now(), "
    "lease_expires_at = now() + make_interval(secs => $2::int), "
    "started_at = coalesce(started_at, now()), updated_at = now() "
    "WHERE id = (SELECT id FROM jobs WHERE kind = ANY($3::text[]) AND "
    "(state = 'queued' OR (state = 'running' AND lease_expires_at < now())) "
    "ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED LIMIT 1) "
    "RETURNING id, kind, params::text, attempts, max_attempts), "
    "e AS (INSERT INTO job_events (job_id, type, data) SELECT id, 'state', "
    "jsonb_build_object('state', 'running', 'worker', $1::text, 'attempt', attempts) "
    "FROM c) SELECT * FROM c",
    3};

const db_stmt sql_jobs_listen = {"jobs_listen", "LISTEN mkdseg_jobs", 0};

const db_stmt sql_jobs_heartbeat = {
    "jobs_heartbeat",
    "UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + "
    "make_interval(secs => $3::int) WHERE id = $1::bigint AND worker = $2 "
    "AND state = 'running' RETURNING cancel_requested",
    3};

const db_stmt sql_jobs_exists = {"jobs_exists", "SELECT 1 FROM jobs WHERE id = $1::bigint", 1};

const db_stmt sql_job_events_after = {
    "job_events_after",
    "SELECT e.id, e.type, e.data::text, (e.type = 'state' AND e.data->>'state' IN "
    "('succeeded','failed','cancelled')) FROM job_events e WHERE e.job_id = $1::bigint "
    "AND e.id > $2::bigint ORDER BY e.id LIMIT 500",
    2};

const db_stmt sql_job_events_listen = {"job_events_listen", "LISTEN mkdseg_job_events", 0};
