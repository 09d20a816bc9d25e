-- The lake as written, one row per event; `date` comes from the Hive partition directory.
SELECT event_time, user_id, team_id, event_name, properties, date
FROM read_parquet('{{ lake_dir }}/events/*/*.parquet', hive_partitioning = true, hive_types = {'date': DATE})
