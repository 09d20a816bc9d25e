-- Convenience views over micro-wh's own bookkeeping, for ad hoc SQL in the DuckDB CLI.
CREATE OR REPLACE VIEW last_refresh AS
SELECT * FROM refresh_log ORDER BY id DESC LIMIT 1;

CREATE OR REPLACE VIEW failed_data_tests AS
SELECT r.refresh_id, l.started_at, r.model, r.test, r.failing_rows, r.detail
FROM refresh_test_results r JOIN refresh_log l ON l.id = r.refresh_id
WHERE NOT r.passed
ORDER BY r.refresh_id DESC;
