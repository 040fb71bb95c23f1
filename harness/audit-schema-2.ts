// The audit database's schema-2 table as a daemon of that version created it (the response's columns as virtual
// generated columns): what the migration test starts from and what bench/audit/insert measures against.
export const SCHEMA_2_VERDICTS = `CREATE TABLE verdicts (seq INTEGER PRIMARY KEY, verdict_id TEXT NOT NULL, trace TEXT, model_id TEXT,
  request_topic TEXT NOT NULL, response_topic TEXT NOT NULL, correlation TEXT, dedupe_key TEXT, payload_sum INTEGER, response TEXT NOT NULL,
  ts TEXT AS (response ->> '$.ts'), node TEXT AS (response ->> '$.node'), inspection TEXT AS (response ->> '$.inspection'),
  verdict TEXT AS (response ->> '$.verdict'), error_code TEXT AS (response ->> '$.error.code'), checks TEXT AS (response -> '$.checks'),
  inputs TEXT AS (response -> '$.inputs'), model TEXT AS (response -> '$.model'), rules_rev TEXT AS (response ->> '$.rules_rev'),
  latency_ms REAL AS (response ->> '$.latency_ms'), deadline_missed INTEGER AS (coalesce(response ->> '$.deadline_missed', 0)),
  fallback INTEGER AS (coalesce(response ->> '$.fallback', 0)));
CREATE UNIQUE INDEX verdicts_id ON verdicts(verdict_id);
CREATE INDEX verdicts_trace ON verdicts(trace) WHERE trace IS NOT NULL;`
