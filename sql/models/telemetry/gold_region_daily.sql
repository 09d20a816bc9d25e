-- Per Census region and day, from the hourly state table (so a new hour costs one day's
-- 24 x 49 rows, not the day's measurements). `devices` is the most devices reporting in any
-- hour of the day, `measurements` the rows behind the day, `hours` the hours it holds.
-- p95_latency_ms is the device-weighted mean of the hourly per-state p95s (a quantile
-- cannot be combined exactly from partial quantiles).
WITH hourly AS (
    SELECT
        "date",
        "hour",
        region,
        sum(devices) AS devices,
        sum(devices * avg_signal_dbm) AS signal_sum,
        sum(devices * p95_latency_ms) AS p95_sum,
        sum(devices * avg_throughput_mbps) AS throughput_sum
    FROM gold_state_hourly
    GROUP BY ALL
)
SELECT
    "date",
    region,
    CAST(max(devices) AS BIGINT) AS devices,
    CAST(sum(devices) AS BIGINT) AS measurements,
    sum(signal_sum) / sum(devices) AS avg_signal_dbm,
    sum(p95_sum) / sum(devices) AS p95_latency_ms,
    sum(throughput_sum) / sum(devices) AS avg_throughput_mbps,
    CAST(count(*) AS INTEGER) AS hours
FROM hourly
GROUP BY ALL
