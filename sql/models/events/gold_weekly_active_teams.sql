-- Teams with at least one event in the week (weeks start on Monday).
SELECT CAST(date_trunc('week', date) AS DATE) AS week, count(DISTINCT team_id) AS weekly_active_teams
FROM silver_events
GROUP BY week
ORDER BY week
