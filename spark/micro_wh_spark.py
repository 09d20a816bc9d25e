#!/usr/bin/env python3
"""micro-wh's models on Apache Spark, over the same Hive-partitioned Parquet lake.

Input is the plan `micro-wh spark --plan` writes (the models' SQL with placeholders filled as
`micro-wh refresh` fills them, their data tests, the bronze views of ingested sources and
the reference tables of the migrations). Each model's SQL is transpiled from DuckDB's
dialect to Spark SQL by sqlglot; models are built in order, every one in full (incremental
maintenance is DuckDB's business); the data tests run as Spark queries; when all pass, each
gold model is written as Parquet to <target>/<model>/.

`micro-wh spark --target DIR` runs this file (built into the binary) with python3; on a
cluster: `spark-submit micro_wh_spark.py --plan plan.json --lake s3://… --target s3://…`.

Exit codes as micro-wh's: 0 done, 1 error (a model Spark cannot run is named, with the
function and the line when a DuckDB function has no Spark translation), 4 data tests failed.
"""

import argparse
import json
import os
import sys

try:
    import pyspark  # noqa: F401  (imported where used; checked here for a clear message)
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError
except ImportError as missing:
    sys.exit(
        f"error: {missing}: the Spark runner needs pyspark and sqlglot "
        "(pip install 'pyspark>=3.5,<4' 'sqlglot>=26,<27') and a JDK"
    )

EXIT_ERROR = 1
EXIT_TESTS_FAILED = 4

# DuckDB functions sqlglot has no translation for, with the Spark SQL that means the same:
# the whole portability layer beyond sqlglot. Keep it tiny; prefer portable SQL in models.
SHIMS = {
    # get_json_object gives NULL for text that is not JSON, where DuckDB's json_extract fails.
    "json_valid": "(GET_JSON_OBJECT({0}, '$') IS NOT NULL)",
}

# Table functions over the lake: `read_parquet('{{ lake_dir }}/<dataset>/…')` becomes a view
# over the dataset's folder, read with partition discovery.
LAKE_READERS = {"read_parquet", "parquet_scan"}


class NotPortable(Exception):
    """A model or test that cannot run on Spark, with where and why."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="JSON from `micro-wh spark --plan`")
    parser.add_argument("--target", help="folder or URI for gold Parquet (<target>/<model>/)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-submit's)")
    parser.add_argument("--lake", default=None, help="where Spark reads the lake (default: the plan's)")
    parser.add_argument(
        "--lake-report",
        default=None,
        help="also write what a plain spark.read.parquet finds in each lake dataset folder "
        "(rows, column types, partition values) and each exported Parquet file, as JSON",
    )
    args = parser.parse_args(argv)
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    if not args.target and not args.lake_report:
        parser.error("--target (or --lake-report) is required")
    lake = (args.lake or plan["lake_dir"]).rstrip("/")

    spark = session(args.master)
    try:
        functions = {row[0].lower() for row in spark.sql("SHOW FUNCTIONS").collect()}
        if args.lake_report:
            write_lake_report(spark, lake, plan["exports_dir"], args.lake_report)
        if not args.target:
            return 0
        try:
            compiled = compile_plan(plan, functions)
        except NotPortable as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        return run(spark, plan, compiled, lake, args.target.rstrip("/"))
    finally:
        spark.stop()


def session(master):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("micro-wh")
    if master:
        builder = builder.master(master)
    settings = {
        # DuckDB (without ICU) computes in UTC.
        "spark.sql.session.timeZone": "UTC",
        # Partition values are typed as micro-wh's views type them (see lake_view), not guessed.
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        # Timestamps as DuckDB writes them, not the legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.shuffle.partitions": os.environ.get("MICRO_WH_SPARK_SHUFFLE_PARTITIONS", "200"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_type(duckdb_type):
    """The Spark SQL type for a DuckDB type name, by sqlglot's mapping."""
    data_type = exp.DataType.build(duckdb_type, dialect="duckdb")
    if data_type.this == exp.DataType.Type.TIMESTAMP:
        return "TIMESTAMP_NTZ"  # DuckDB's TIMESTAMP has no time zone
    return data_type.sql(dialect="spark")


# ---------------------------------------------------------------------------------------------
# Transpiling


def compile_plan(plan, functions):
    """Spark SQL for every model and test, plus the lake datasets the models read; every
    model that cannot run on Spark is reported at once."""
    problems, compiled, lake_reads = [], [], {}
    for model in plan["models"]:
        try:
            sql = transpile(model, model["sql"], functions, plan["lake_dir_in_sql"], lake_reads)
            tests = [
                (t, transpile(model, t["sql"], functions, None, None, test=t["name"]))
                for t in model["tests"]
            ]
            compiled.append((model, sql, tests))
        except NotPortable as e:
            problems.append(str(e))
    if problems:
        raise NotPortable("\n".join(problems))
    return compiled, lake_reads


def transpile(model, sql, functions, lake_dir_in_sql, lake_reads, test=None):
    where = f"model {model['name']} ({model['path']})" + (f", data test {test}" if test else "")
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as e:
        raise NotPortable(f"{where}: sqlglot cannot parse the SQL: {e}") from None
    if lake_reads is not None:
        replace_lake_reads(tree, where, lake_dir_in_sql, lake_reads)
    missing = []
    for call in list(tree.find_all(exp.Anonymous)):
        name = call.name.lower()
        if name in SHIMS:
            args = [a.sql(dialect="spark") for a in call.expressions]
            call.replace(sqlglot.parse_one(SHIMS[name].format(*args), read="spark"))
        elif name not in functions:
            line = call.meta.get("line") if call.meta else None
            at = f", line {line}" if line else ""
            missing.append(
                f"{where}{at}: DuckDB function `{call.name}` has no Spark translation "
                "(see README: Scaling out, for the portable subset)"
            )
    if missing:
        raise NotPortable("\n".join(missing))
    # sqlglot writes DuckDB's quantile_cont as PERCENTILE_CONT(x, q), which Spark 3 lacks; its
    # `percentile` is the same exact, interpolated quantile.
    for call in list(tree.find_all(exp.PercentileCont)):
        if call.expression is not None and not isinstance(call.parent, exp.WithinGroup):
            call.replace(exp.Anonymous(this="PERCENTILE", expressions=[call.this, call.expression]))
    try:
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as e:
        raise NotPortable(f"{where}: no Spark translation: {e}") from None


def replace_lake_reads(tree, where, lake_dir_in_sql, lake_reads):
    for table in list(tree.find_all(exp.Table)):
        call = table.this
        if not isinstance(call, exp.Anonymous) or call.name.lower() not in LAKE_READERS:
            continue
        path = call.expressions[0] if call.expressions else None
        if not isinstance(path, exp.Literal) or not path.is_string:
            raise NotPortable(f"{where}: {call.name} must read one path under {{{{ lake_dir }}}}")
        dataset = lake_dataset(path.this, lake_dir_in_sql)
        if dataset is None:
            # Not the lake (a registry file, say): the same path, from the project root.
            if any(c in path.this for c in "*?[") or len(call.expressions) > 1:
                raise NotPortable(
                    f"{where}: {call.name}('{path.this}') outside the lake ({lake_dir_in_sql}/) "
                    "must name one file or folder, without options"
                )
            view = "__file_" + str(len(lake_reads))
            lake_reads[view] = {"file": path.this}
            table.replace(exp.Table(this=exp.to_identifier(view), alias=table.args.get("alias")))
            continue
        hive_types = {}
        for option in call.expressions[1:]:
            if isinstance(option, exp.EQ) and option.this.name.lower() == "hive_types":
                for field in option.expression.expressions:
                    hive_types[field.this.name] = field.expression.name
        view = "__lake_" + dataset.replace("/", "__")
        lake_reads[view] = {"dataset": dataset, "hive_types": hive_types}
        table.replace(exp.Table(this=exp.to_identifier(view), alias=table.args.get("alias")))


def lake_dataset(path, lake_dir_in_sql):
    """`<lake>/<dataset>/date=…/*.parquet` -> `<dataset>`: the folders before the first
    partition folder or glob."""
    prefix = lake_dir_in_sql.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = []
    for part in path[len(prefix):].split("/"):
        if "=" in part or "*" in part or part.endswith(".parquet"):
            break
        parts.append(part)
    return "/".join(parts) or None


# ---------------------------------------------------------------------------------------------
# Running


def run(spark, plan, compiled, lake, target):
    from pyspark.sql.utils import AnalysisException

    models, lake_reads = compiled
    for table in plan["reference_tables"]:
        reference_view(spark, table)
    for source in plan["sources"]:
        lake_view(spark, lake, source["dataset"], dict(source["partitions"])).createOrReplaceTempView(
            source["view"]
        )
    for view, read in lake_reads.items():
        if "file" in read:
            path = read["file"]
            if "://" not in path and not os.path.isabs(path):
                path = os.path.join(plan["root"], path)
            spark.read.parquet(path).createOrReplaceTempView(view)
            continue
        # Typed as DuckDB types them: by the model's hive_types, else as DuckDB infers them.
        types = dict(plan["lake_partition_types"].get(read["dataset"], []))
        types.update(read["hive_types"])
        lake_view(spark, lake, read["dataset"], types).createOrReplaceTempView(view)

    failed = 0
    for model, sql, tests in models:
        try:
            df = spark.sql(sql)
            # Read again by the tests and the models after it: computed once, kept (spilling
            # to disk), except bronze views, which are the lake itself.
            if model["materialized"] != "view" or model["layer"] != "bronze":
                df = df.persist()
            df.createOrReplaceTempView(model["name"])
            rows = df.count()
            results = [(t, check(spark, t, test_sql)) for t, test_sql in tests]
        except AnalysisException as e:
            print(
                f"error: model {model['name']} ({model['path']}) failed on Spark: {e}\n"
                f"--- Spark SQL ---\n{sql}",
                file=sys.stderr,
            )
            return EXIT_ERROR
        passed = sum(ok for _, (ok, _) in results)
        print(f"{model['name']:<28} {rows:>12} rows  {passed}/{len(results)} data tests passed")
        for t, (ok, detail) in results:
            if not ok:
                failed += 1
                print(f"  {model['name']}: {t['name']} failed ({detail})", file=sys.stderr)
    if failed:
        print(f"{failed} data tests failed; nothing written to {target}", file=sys.stderr)
        return EXIT_TESTS_FAILED

    gold = [m for m, _, _ in models if m["layer"] == "gold"]
    for model in gold:
        spark.table(model["name"]).write.mode("overwrite").parquet(f"{target}/{model['name']}")
    print(f"{len(models)} models built on Spark, {len(gold)} gold tables written to {target}")
    return 0


def check(spark, test, sql):
    value = spark.sql(sql).collect()[0][0] or 0
    if test["min"] is None and test["max"] is None:
        return value == 0, f"{value} failing rows"
    ok = (test["min"] is None or value >= test["min"]) and (test["max"] is None or value <= test["max"])
    return ok, f"{value} rows"


def lake_view(spark, lake, dataset, partition_types):
    """A dataset's folder with partition discovery; partition values stay the text of the
    folder names unless typed (by a model's `hive_types`, micro-wh's bronze views, or DuckDB's
    own inference), so `month=01` is '01' on both engines."""
    from pyspark.sql import functions as F

    folder = f"{lake}/{dataset}"
    df = spark.read.option("basePath", folder).option("mergeSchema", "true").parquet(folder)
    for column, duckdb_type in partition_types.items():
        df = df.withColumn(column, F.col(column).cast(spark_type(duckdb_type)))
    return df


def reference_view(spark, table):
    from pyspark.sql.types import StringType, StructField, StructType

    names = [name for name, _ in table["columns"]]
    schema = StructType([StructField(n, StringType()) for n in names])
    df = spark.createDataFrame([tuple(r) for r in table["rows"]], schema)
    df = df.selectExpr(*[f"CAST(`{n}` AS {spark_type(t)}) AS `{n}`" for n, t in table["columns"]])
    df.createOrReplaceTempView(table["name"])


def write_lake_report(spark, lake, exports_dir, path):
    """What a plain `spark.read.parquet` with Spark's default partition discovery finds in
    each dataset folder of a local lake, and in each exported Parquet file."""
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "true")
    report = {"lake": {}, "exports": {}}
    for name in sorted(os.listdir(exports_dir)) if os.path.isdir(exports_dir) else []:
        if name.endswith(".parquet"):
            df = spark.read.parquet(os.path.join(exports_dir, name))
            report["exports"][name] = {
                "rows": df.count(),
                "columns": [[f.name, f.dataType.simpleString()] for f in df.schema.fields],
            }
    for dataset in sorted(os.listdir(lake)):
        folder = os.path.join(lake, dataset)
        if dataset.startswith((".", "_")) or not os.path.isdir(folder):
            continue
        partitions = partition_columns(folder)
        df = spark.read.parquet(folder)
        report["lake"][dataset] = {
            "rows": df.count(),
            "columns": [[f.name, f.dataType.simpleString()] for f in df.schema.fields],
            "partition_values": sorted(
                [[None if v is None else str(v) for v in row] for row in df.select(*partitions).distinct().collect()],
                key=lambda r: [(v is None, v or "") for v in r],
            )
            if partitions
            else [],
        }
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


def partition_columns(folder):
    names = []
    while True:
        subdirs = sorted(d for d in os.listdir(folder) if "=" in d and os.path.isdir(os.path.join(folder, d)))
        if not subdirs:
            return names
        names.append(subdirs[0].split("=", 1)[0])
        folder = os.path.join(folder, subdirs[0])


if __name__ == "__main__":
    sys.exit(main())
