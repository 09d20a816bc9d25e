-- The seed's minimal refresh as a plain DuckDB script, the reference `full_refresh_bench.py`
-- times `micro-wh refresh --full` against: a bronze view over the lake, a silver view that
-- casts and drops rows with NULL ids or invalid JSON (no dedup), the three events gold
-- aggregates and their Parquet exports. {{lake_dir}} and {{exports_dir}} are filled by the bench.
SET preserve_insertion_order = false;

CREATE OR REPLACE VIEW bronze_events AS
SELECT event_time, user_id, team_id, event_name, properties, date
FROM read_parquet('{{lake_dir}}/events/*/*.parquet', hive_partitioning = true, hive_types = {'date': DATE});

CREATE OR REPLACE VIEW silver_events AS
SELECT
    CAST(event_time AS TIMESTAMP) AS event_time,
    CAST(user_id AS BIGINT) AS user_id,
    CAST(team_id AS BIGINT) AS team_id,
    CAST(event_name AS VARCHAR) AS event_name,
    CAST(properties AS VARCHAR) AS properties,
    date
FROM bronze_events
WHERE user_id IS NOT NULL AND team_id IS NOT NULL AND json_valid(properties);

CREATE OR REPLACE TABLE gold_weekly_active_teams AS
SELECT CAST(date_trunc('week', date) AS DATE) AS week, count(DISTINCT team_id) AS weekly_active_teams
FROM silver_events GROUP BY week ORDER BY week;

CREATE OR REPLACE TABLE gold_daily_active_users AS
SELECT date, count(DISTINCT user_id) AS dau
FROM silver_events GROUP BY date ORDER BY date;

CREATE OR REPLACE TABLE gold_event_mix AS
SELECT date, event_name, count(*) AS events, count(DISTINCT user_id) AS unique_users
FROM silver_events GROUP BY date, event_name ORDER BY date, event_name;

COPY gold_weekly_active_teams TO '{{exports_dir}}/gold_weekly_active_teams.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY gold_daily_active_users TO '{{exports_dir}}/gold_daily_active_users.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY gold_event_mix TO '{{exports_dir}}/gold_event_mix.parquet' (FORMAT parquet, COMPRESSION zstd);
