-- One typed row per business event (ingest keeps the latest version of each event_id);
-- the partition folders give the category and the day.
SELECT
    event_id,
    "timestamp" AS event_time,
    domain,
    event_type,
    event_category,
    make_date(CAST(year AS INTEGER), CAST(month AS INTEGER), CAST(day AS INTEGER)) AS day,
    data ->> 'account_id' AS account_id,
    TRY_CAST(data ->> 'amount' AS DECIMAL(12, 2)) AS amount,
    data ->> 'currency' AS currency,
    _source_file
FROM bronze_business_events
