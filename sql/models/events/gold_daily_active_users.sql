-- Users with at least one event on the day.
SELECT date, count(DISTINCT user_id) AS dau
FROM silver_events
GROUP BY date
ORDER BY date
