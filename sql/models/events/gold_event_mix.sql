-- Events and distinct users per day and event name.
SELECT date, event_name, count(*) AS events, count(DISTINCT user_id) AS unique_users
FROM silver_events
GROUP BY date, event_name
ORDER BY date, event_name
