-- The device registry written by `micro-wh telemetry init` (the path is relative to the
-- project root, where micro-wh and the DuckDB CLI resolve it).
SELECT region, state, latitude, longitude, site, cell, sector, band
FROM read_parquet('{{ telemetry.registry }}/devices.parquet')
