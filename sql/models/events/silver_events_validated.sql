-- Every bronze row once, with the reason it is kept out of silver (NULL when it is valid).
-- Nothing is dropped here: silver_events and silver_events_rejected split this table.
WITH checked AS (
    SELECT
        event_time, user_id, team_id, event_name, properties, date,
        CASE
            WHEN event_time IS NULL THEN 'event_time is missing'
            WHEN user_id IS NULL THEN 'user_id is missing'
            WHEN user_id NOT BETWEEN 1 AND {{ events.max_user_id }} THEN 'user_id out of range'
            WHEN team_id IS NULL THEN 'team_id is missing'
            WHEN team_id NOT BETWEEN 1 AND {{ events.max_team_id }} THEN 'team_id out of range'
            WHEN event_name IS NULL
                OR event_name NOT IN (SELECT event_name FROM dim_event_names) THEN 'unknown event_name'
            WHEN properties IS NULL
                OR NOT json_valid(properties)
                OR NOT ltrim(properties) LIKE '{%' THEN 'properties is not a JSON object'
            WHEN date IS DISTINCT FROM CAST(event_time AS DATE) THEN 'date partition does not match event_time'
        END AS reject_reason
    FROM bronze_events
)
SELECT
    event_time, user_id, team_id, event_name, properties, date,
    -- Of valid rows identical in every column one stays and its copies are rejected. Only
    -- valid rows are ranked together, so an invalid twin can never push a valid row out.
    CASE
        WHEN reject_reason IS NULL
            AND row_number() OVER (
                PARTITION BY reject_reason IS NULL, event_time, user_id, team_id, event_name, properties, date
                ORDER BY event_time  -- any order (the rows are identical); Spark requires one
            ) > 1
        THEN 'duplicate of another row'
        ELSE reject_reason
    END AS reject_reason
FROM checked
