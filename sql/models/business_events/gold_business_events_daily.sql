-- Events per day and category, with distinct accounts and the money moved.
SELECT
    day,
    event_category,
    count(*) AS events,
    count(DISTINCT account_id) AS accounts,
    coalesce(sum(amount), 0) AS amount
FROM silver_business_events
GROUP BY day, event_category
ORDER BY day, event_category
