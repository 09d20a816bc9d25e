-- One typed row per business event (ingest keeps the latest version of each event_id);
-- the partition folders give the category and the day. `year`, `month` and `day` are the
-- lake's folder labels, as text ('2023', '01', '05'): incremental models select the changed
-- partitions by them, and only an untransformed label lets DuckDB skip the other days'
-- folders (a filter on make_date(...) reads every day of the category). The day as a DATE
-- is `event_date`.
SELECT
    event_id,
    "timestamp" AS event_time,
    domain,
    event_type,
    event_category,
    make_date(CAST(year AS INTEGER), CAST(month AS INTEGER), CAST(day AS INTEGER)) AS event_date,
    data ->> 'account_id' AS account_id,
    TRY_CAST(data ->> 'amount' AS DECIMAL(12, 2)) AS amount,
    data ->> 'currency' AS currency,
    _source_file,
    year,
    month,
    day
FROM bronze_business_events
