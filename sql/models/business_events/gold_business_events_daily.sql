-- Events per day and category, with distinct accounts and the money moved. Each (day,
-- event_category) group is the rows of exactly one lake partition folder
-- (event_category=…/year=…/month=…/day=…), so the table is refreshed group by group.
-- Grouped by silver's event_date (its `day` is the folder label, text).
SELECT
    event_date AS day,
    event_category,
    count(*) AS events,
    count(DISTINCT account_id) AS accounts,
    coalesce(sum(amount), 0) AS amount
FROM silver_business_events
GROUP BY event_date, event_category
ORDER BY event_date, event_category
