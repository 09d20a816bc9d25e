-- The dashboard's map and trend: per state and hour, the devices that reported and their
-- signal (metric_1, dBm), latency (metric_3, ms) and download throughput (metric_6, Mbit/s).
SELECT
    CAST(measured_at AS DATE) AS "date",
    "hour",
    region,
    state,
    count(*) AS devices,
    avg(metric_1) AS avg_signal_dbm,
    quantile_cont(metric_3, 0.95) AS p95_latency_ms,
    avg(metric_6) AS avg_throughput_mbps
FROM silver_telemetry
GROUP BY ALL
