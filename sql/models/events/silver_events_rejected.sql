-- Rows kept out of silver_events, with the reason.
SELECT event_time, user_id, team_id, event_name, properties, date, reject_reason
FROM silver_events_validated
WHERE reject_reason IS NOT NULL
