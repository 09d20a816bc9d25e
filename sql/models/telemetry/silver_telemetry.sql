-- One row per device and hour: the lake's rows, typed and checked when their file was
-- ingested, with the measurement time as a real TIMESTAMP. `date` (dd-mm-yy) and `hour` are
-- the lake's partition labels; incremental models select changed hours by them.
SELECT
    "datetime" AS measured_at,
    region,
    state,
    latitude,
    longitude,
    site,
    cell,
    sector,
    band,
    metric_1, metric_2, metric_3, metric_4, metric_5,
    metric_6, metric_7, metric_8, metric_9, metric_10,
    metric_11, metric_12, metric_13, metric_14, metric_15,
    metric_16, metric_17, metric_18, metric_19, metric_20,
    "date",
    CAST("hour" AS INTEGER) AS "hour"
FROM bronze_telemetry
