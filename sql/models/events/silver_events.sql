-- Typed, validated, de-duplicated events.
SELECT event_time, user_id, team_id, event_name, properties, date
FROM silver_events_validated
WHERE reject_reason IS NULL
