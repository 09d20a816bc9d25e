-- The least a refresh after one appended day can do, as a plain DuckDB script told which day
-- changed ({{day}}): validate and deduplicate that day's bronze rows into one silver Parquet file
-- (as micro-wh's silver_events_validated does per day), recompute that day's gold rows and its
-- week's from there, and export the three gold tables. It finds no changes, runs no data tests
-- and keeps no refresh log or history. `refresh_bench.py` runs it on the gold tables the plain
-- full script left in {{db}} and compares `micro-wh refresh` after the same appended day with it.
SET preserve_insertion_order = false;
ATTACH '{{db}}' AS plain;
USE plain;

COPY (
    SELECT * EXCLUDE (copy_no) FROM (
        SELECT *, row_number() OVER (PARTITION BY event_time, user_id, team_id, event_name, properties) AS copy_no
        FROM read_parquet('{{lake_dir}}/events/date={{day}}/*.parquet', hive_partitioning = true, hive_types = {'date': DATE})
        WHERE user_id IS NOT NULL AND team_id IS NOT NULL AND json_valid(properties)
    )
    WHERE copy_no = 1
) TO '{{silver_dir}}/date={{day}}.parquet' (FORMAT parquet, COMPRESSION zstd);

BEGIN;
-- The week's other days, as the plain full script's silver view reads them.
DELETE FROM gold_weekly_active_teams WHERE week = CAST(date_trunc('week', DATE '{{day}}') AS DATE);
INSERT INTO gold_weekly_active_teams
SELECT CAST(date_trunc('week', date) AS DATE) AS week, count(DISTINCT team_id) AS weekly_active_teams
FROM (
    SELECT date, team_id FROM '{{silver_dir}}/date={{day}}.parquet'
    UNION ALL
    SELECT date, team_id
    FROM read_parquet({{week_before}}, hive_partitioning = true, hive_types = {'date': DATE})
    WHERE user_id IS NOT NULL AND team_id IS NOT NULL AND json_valid(properties)
)
GROUP BY week;

DELETE FROM gold_daily_active_users WHERE date = DATE '{{day}}';
INSERT INTO gold_daily_active_users
SELECT date, count(DISTINCT user_id) AS dau FROM '{{silver_dir}}/date={{day}}.parquet' GROUP BY date;

DELETE FROM gold_event_mix WHERE date = DATE '{{day}}';
INSERT INTO gold_event_mix
SELECT date, event_name, count(*) AS events, count(DISTINCT user_id) AS unique_users
FROM '{{silver_dir}}/date={{day}}.parquet' GROUP BY date, event_name;
COMMIT;

COPY gold_weekly_active_teams TO '{{exports_dir}}/gold_weekly_active_teams.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY gold_daily_active_users TO '{{exports_dir}}/gold_daily_active_users.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY gold_event_mix TO '{{exports_dir}}/gold_event_mix.parquet' (FORMAT parquet, COMPRESSION zstd);
