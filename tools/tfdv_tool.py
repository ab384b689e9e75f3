"""TensorFlow Data Validation as a small command-line tool with files in and out.

It runs under its own interpreter (.venv-tfdv: TFDV 1.16.1 needs protobuf<6,
pandas<2, pyarrow<11, which the main environment has outgrown), so it imports
nothing from this project. The validate stage calls it as a subprocess.

    python tfdv_tool.py validate --split train=train.parquet --split validation=v.parquet \
        [--split test=t.parquet] [--schema curated.pbtxt] --out DIR
    python tfdv_tool.py serving --batch live.parquet --schema schema.pbtxt --label target \
        --baseline train.pb --out DIR
    python tfdv_tool.py serve --socket PATH [--parent PID]
    python tfdv_tool.py --version

Statistics come from TFDV's in-memory generator, or, with ``--beam`` (or more
rows than ``--beam-over``), from TFDV's Beam pipeline reading the Parquet files
in record batches, with any Beam pipeline options (``--beam-option
--runner=...``) so a distributed runner can take over when data outgrows memory.

``serve`` is the warm sidecar: one interpreter that has imported TFDV (about 3 s
of TensorFlow and Beam) answers requests on a UNIX socket, one at a time, with
the exit status and output the same command would have given; it exits when the
process that started it is gone, or (``--idle-exit``) when no request came for a while.

Outputs of ``validate`` in DIR:
    statistics/<split>.pb  DatasetFeatureStatisticsList (binary proto)
    schema.pbtxt           the schema validated against (given, or inferred)
    statistics.html        TFDV's facets view, train vs validation
    result.json            {"tool_version", "schema_source", "anomalies", "skew", "splits",
                            "statistics_engine", "statistics_runner", ...}

Outputs of ``serving`` in DIR (a live batch, held to the schema in the SERVING
environment, where the label may be absent):
    statistics/live.pb     the batch's statistics (label excluded)
    statistics.html        TFDV's facets view, baseline vs live
    result.json            {"tool_version", "anomalies", "tfdv_drift", "rows", "tfdv_version"}

Exit status: 0 when validation ran (anomalies or not: result.json says),
2 for bad arguments, 1 with a one-line message on stderr for any other failure.
"""

import argparse
import json
import os
import sys

TOOL_VERSION = "1"
DEFAULT_JS_THRESHOLD = 0.1  # Jensen-Shannon divergence, numeric features
DEFAULT_LINF_THRESHOLD = 0.1  # L-infinity distance, categorical features


def _load_frame(path):
    """Parquet (recognised by its magic bytes: KFP artifact paths have no suffix) or CSV."""
    import pandas as pd

    with open(path, "rb") as handle:
        is_parquet = handle.read(4) == b"PAR1"
    return pd.read_parquet(path) if is_parquet else pd.read_csv(path)


def _anomaly_rows(split, anomalies):
    """Flatten TFDV's Anomalies proto into readable rows."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    rows = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        for reason in info.reason:
            rows.append(
                {
                    "split": split,
                    "feature": feature,
                    "kind": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                    "severity": anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                    "detail": reason.description or reason.short_description,
                }
            )
    dataset_info = anomalies.dataset_anomaly_info
    for reason in dataset_info.reason:
        rows.append(
            {
                "split": split,
                "feature": "(dataset)",
                "kind": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                "severity": anomalies_pb2.AnomalyInfo.Severity.Name(dataset_info.severity),
                "detail": reason.description or reason.short_description,
            }
        )
    return rows


def _skew_rows(tfdv, schema, lhs_stats, rhs_stats, js_threshold, linf_threshold):
    """Distance of each feature's distribution between two datasets.

    A copy of the schema gets skew comparators so the measurement never
    changes the schema that is saved.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    measured = schema_pb2.Schema()
    measured.CopyFrom(schema)
    for feature in measured.feature:
        if feature.type in (schema_pb2.INT, schema_pb2.FLOAT) and not feature.HasField("domain"):
            feature.skew_comparator.jensen_shannon_divergence.threshold = js_threshold
        else:
            feature.skew_comparator.infinity_norm.threshold = linf_threshold
    anomalies = tfdv.validate_statistics(lhs_stats, measured, serving_statistics=rhs_stats)
    rows = []
    for info in anomalies.drift_skew_info:
        for measurement in info.skew_measurements:
            rows.append(
                {
                    "feature": ".".join(info.path.step),
                    "measure": measurement.Type.Name(measurement.type).lower(),
                    "value": round(float(measurement.value), 6),
                    "threshold": float(measurement.threshold),
                    "exceeded": float(measurement.value) > float(measurement.threshold),
                }
            )
    return sorted(rows, key=lambda row: row["feature"])


def _feature_summary(statistics):
    """Per-feature numbers from TFDV's statistics, for a report that works offline."""
    rows = []
    for feature in statistics.datasets[0].features:
        name = ".".join(feature.path.step) or feature.name
        if feature.HasField("num_stats"):
            stats = feature.num_stats
            common = stats.common_stats
            rows.append(
                {
                    "feature": name,
                    "type": "numeric",
                    "missing": int(common.num_missing),
                    "mean": stats.mean,
                    "std_dev": stats.std_dev,
                    "min": stats.min,
                    "max": stats.max,
                    "zeros": int(stats.num_zeros),
                }
            )
        elif feature.HasField("string_stats"):
            stats = feature.string_stats
            common = stats.common_stats
            top = stats.top_values[0].value if stats.top_values else ""
            rows.append(
                {
                    "feature": name,
                    "type": "categorical",
                    "missing": int(common.num_missing),
                    "unique": int(stats.unique),
                    "top": top,
                }
            )
    return rows


def _rows(path):
    """Rows in a Parquet file (from its footer) or a CSV file (by counting lines)."""
    with open(path, "rb") as handle:
        if handle.read(4) == b"PAR1":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        handle.seek(0)
        return max(sum(1 for _ in handle) - 1, 0)


def statistics(path, beam, beam_options):
    """TFDV statistics of one table: in memory, or with TFDV's Beam pipeline over the Parquet file."""
    import tensorflow_data_validation as tfdv

    if not beam:
        return tfdv.generate_statistics_from_dataframe(_load_frame(path))
    import tempfile

    import apache_beam as beam_sdk
    from apache_beam.io import parquetio
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_data_validation.utils import stats_util

    # Absolute paths: the runner's workers do not share this process's working directory (and a file
    # pattern that matches nothing there reads as an empty table, not an error).
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "stats.pb")
        with beam_sdk.Pipeline(options=PipelineOptions(list(beam_options) or ["--runner=DirectRunner"])) as pipeline:
            _ = (
                pipeline
                | "Read" >> parquetio.ReadFromParquetBatched(os.path.abspath(path))
                | "AsFeatureLists" >> beam_sdk.FlatMap(_as_feature_lists)
                | "Statistics" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
                | "Write" >> tfdv.WriteStatisticsToBinaryFile(output)
            )
        return stats_util.load_stats_binary(output)


def _as_feature_lists(table):
    """A Parquet table (one read batch) as TFDV wants it: record batches in which every column is a
    list per row (as its dataframe path makes them)."""
    import pyarrow as pa
    from tfx_bsl.arrow import table_util

    # A row group (up to 1,048,576 rows as the split stage writes them) in slices, so its list-column copy
    # and the generators' working memory stay small. Here, not a module constant: a runner's workers get
    # this function pickled by value, without this script's globals (it runs as __main__).
    batch_rows = 262_144
    for batch in table.to_batches(max_chunksize=batch_rows):
        columns = [
            column.cast(pa.string()) if pa.types.is_large_string(column.type) else column for column in batch.columns
        ]
        yield table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_arrays(columns, batch.schema.names))


def _runner_name(beam_options):
    """The runner the Beam options name (the last --runner=, as Beam's own parser takes it), else Beam's default."""
    named = [option.split("=", 1)[1] for option in beam_options if option.startswith("--runner=")]
    return named[-1] if named else "DirectRunner"


def validate(
    splits,
    schema_path,
    out_dir,
    js_threshold,
    linf_threshold,
    beam_over=None,
    beam_options=(),
    beam_runner_label=None,
):
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import display_util

    os.makedirs(os.path.join(out_dir, "statistics"), exist_ok=True)
    stats, beam_used = {}, False
    for name, path in splits.items():
        beam = beam_over is not None and _rows(path) > beam_over
        beam_used = beam_used or beam
        stats[name] = statistics(path, beam, beam_options)
        with open(os.path.join(out_dir, "statistics", f"{name}.pb"), "wb") as handle:
            handle.write(stats[name].SerializeToString())

    if schema_path:
        schema = tfdv.load_schema_text(schema_path)
        schema_source = "given"
    else:
        # Inferred from the training split, then widened by the other splits'
        # statistics (no second pass over the data), so a rare category that the
        # hash split happened to put only in test is part of the baseline.
        names = sorted(stats, key=lambda name: name != "train")
        schema = tfdv.infer_schema(stats[names[0]])
        for name in names[1:]:
            schema = tfdv.update_schema(schema, stats[name])
        schema_source = "inferred"
    tfdv.write_schema_text(schema, os.path.join(out_dir, "schema.pbtxt"))

    anomalies = []
    for name in splits:
        anomalies.extend(_anomaly_rows(name, tfdv.validate_statistics(stats[name], schema)))

    skew = []
    if "train" in stats and "validation" in stats:
        skew = _skew_rows(tfdv, schema, stats["train"], stats["validation"], js_threshold, linf_threshold)
        html = display_util.get_statistics_html(
            lhs_statistics=stats["train"], rhs_statistics=stats["validation"], lhs_name="train", rhs_name="validation"
        )
    else:
        first = next(iter(stats))
        html = display_util.get_statistics_html(lhs_statistics=stats[first], lhs_name=first)
    with open(os.path.join(out_dir, "statistics.html"), "w", encoding="utf-8") as handle:
        handle.write(html)

    result = {
        "tool_version": TOOL_VERSION,
        "tfdv_version": tfdv.__version__,
        "schema_source": schema_source,
        "anomalies": anomalies,
        "skew": skew,
        "thresholds": {"jensen_shannon_divergence": js_threshold, "infinity_norm": linf_threshold},
        "splits": {name: {"num_examples": int(s.datasets[0].num_examples)} for name, s in stats.items()},
        "statistics_engine": "beam" if beam_used else "in-memory",
        # Which Beam runner computed them: the caller's name for it (spark, flink, direct), else the --runner option.
        "statistics_runner": (beam_runner_label or _runner_name(beam_options)) if beam_used else None,
        "features": {name: _feature_summary(s) for name, s in stats.items()},
    }
    with open(os.path.join(out_dir, "result.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    return result


def serving_schema(schema, label):
    """A copy of the training schema in which the label may be absent (environment SERVING).

    TFDV's environments: every feature is expected in TRAINING and SERVING
    except the label, which is not_in_environment SERVING.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    serving = schema_pb2.Schema()
    serving.CopyFrom(schema)
    del serving.default_environment[:]
    serving.default_environment.extend(["TRAINING", "SERVING"])
    for feature in serving.feature:
        if feature.name == label and "SERVING" not in feature.not_in_environment:
            feature.not_in_environment.append("SERVING")
    return serving


def _drift_rows(tfdv, schema, baseline, live, js_threshold, linf_threshold):
    """TFDV's own drift comparators (Jensen-Shannon for numbers, L-infinity for categories), as it reports them."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    measured = schema_pb2.Schema()
    measured.CopyFrom(schema)
    for feature in measured.feature:
        if feature.type in (schema_pb2.INT, schema_pb2.FLOAT) and not feature.HasField("domain"):
            feature.drift_comparator.jensen_shannon_divergence.threshold = js_threshold
        else:
            feature.drift_comparator.infinity_norm.threshold = linf_threshold
    anomalies = tfdv.validate_statistics(live, measured, previous_statistics=baseline, environment="SERVING")
    rows = []
    for info in anomalies.drift_skew_info:
        for measurement in info.drift_measurements:
            rows.append(
                {
                    "feature": ".".join(info.path.step),
                    "measure": measurement.Type.Name(measurement.type).lower(),
                    "value": round(float(measurement.value), 6),
                    "threshold": float(measurement.threshold),
                }
            )
    return sorted(rows, key=lambda row: row["feature"])


def serving(batch_path, schema_path, label, baseline_path, out_dir, js_threshold, linf_threshold):
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import display_util
    from tensorflow_metadata.proto.v0 import statistics_pb2

    os.makedirs(os.path.join(out_dir, "statistics"), exist_ok=True)
    frame = _load_frame(batch_path)
    features = frame.drop(columns=[label]) if label in frame.columns else frame
    live = tfdv.generate_statistics_from_dataframe(features)
    with open(os.path.join(out_dir, "statistics", "live.pb"), "wb") as handle:
        handle.write(live.SerializeToString())
    schema = serving_schema(tfdv.load_schema_text(schema_path), label)
    anomalies = _anomaly_rows("live", tfdv.validate_statistics(live, schema, environment="SERVING"))
    baseline = statistics_pb2.DatasetFeatureStatisticsList()
    with open(baseline_path, "rb") as handle:
        baseline.ParseFromString(handle.read())
    drift = _drift_rows(tfdv, schema, baseline, live, js_threshold, linf_threshold) if not anomalies else []
    html = display_util.get_statistics_html(
        lhs_statistics=baseline, rhs_statistics=live, lhs_name="baseline (train)", rhs_name="live"
    )
    with open(os.path.join(out_dir, "statistics.html"), "w", encoding="utf-8") as handle:
        handle.write(html)
    result = {
        "tool_version": TOOL_VERSION,
        "tfdv_version": tfdv.__version__,
        "anomalies": anomalies,
        "tfdv_drift": drift,
        "rows": int(live.datasets[0].num_examples),
    }
    with open(os.path.join(out_dir, "result.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    return result


def _split_argument(text):
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfdv_tool", description="TFDV statistics, schema and anomalies.")
    parser.add_argument("--version", action="version", version=f"tfdv_tool {TOOL_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="statistics, schema, anomalies and skew for data splits")
    check.add_argument("--split", action="append", type=_split_argument, required=True, metavar="NAME=PATH")
    check.add_argument("--schema", help="schema .pbtxt to validate against; inferred when absent")
    check.add_argument("--out", required=True, help="output directory")
    check.add_argument("--js-threshold", type=float, default=DEFAULT_JS_THRESHOLD)
    check.add_argument("--linf-threshold", type=float, default=DEFAULT_LINF_THRESHOLD)
    check.add_argument(
        "--beam-over", type=int, default=None, help="use TFDV's Beam pipeline for a split with more rows than this"
    )
    check.add_argument(
        "--beam-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="a Beam pipeline option, e.g. --beam-option=--runner=DirectRunner (repeatable)",
    )
    check.add_argument(
        "--beam-runner-label",
        default=None,
        metavar="NAME",
        help="what result.json calls the runner of the Beam options (default: their --runner)",
    )
    sidecar = commands.add_parser("serve", help="answer requests on a UNIX socket with TFDV already imported")
    sidecar.add_argument("--socket", required=True)
    sidecar.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    sidecar.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after a request, exit when no other comes for this long",
    )
    live = commands.add_parser("serving", help="a live batch against the schema (SERVING) and the baseline")
    live.add_argument("--batch", required=True, help="the batch (Parquet or CSV)")
    live.add_argument("--schema", required=True, help="the schema .pbtxt the model was validated against")
    live.add_argument("--label", required=True, help="the label column, which the batch may lack")
    live.add_argument("--baseline", required=True, help="the training split's statistics (.pb)")
    live.add_argument("--out", required=True, help="output directory")
    live.add_argument("--js-threshold", type=float, default=DEFAULT_JS_THRESHOLD)
    live.add_argument("--linf-threshold", type=float, default=DEFAULT_LINF_THRESHOLD)
    args = parser.parse_args(argv)

    if args.command == "serve":
        return serve(args.socket, args.parent, args.idle_exit)
    if args.command == "serving":
        for path in (args.batch, args.schema, args.baseline):
            if not os.path.isfile(path):
                parser.error(f"no such file {path}")
        try:
            result = serving(
                args.batch, args.schema, args.label, args.baseline, args.out, args.js_threshold, args.linf_threshold
            )
        except Exception as error:  # one line for the caller, whatever TFDV raised
            print(f"tfdv_tool: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
            return 1
        print(json.dumps({"anomalies": len(result["anomalies"]), "rows": result["rows"]}))
        return 0

    splits = dict(args.split)
    for name, path in splits.items():
        if not os.path.isfile(path):
            parser.error(f"split {name}: no such file {path}")
    if args.schema and not os.path.isfile(args.schema):
        parser.error(f"no such schema file {args.schema}")
    try:
        result = validate(
            splits,
            args.schema,
            args.out,
            args.js_threshold,
            args.linf_threshold,
            args.beam_over,
            args.beam_option,
            args.beam_runner_label,
        )
    except Exception as error:  # one line for the caller, whatever TFDV raised
        print(f"tfdv_tool: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    print(json.dumps({"anomalies": len(result["anomalies"]), "schema_source": result["schema_source"]}))
    return 0


def serve(socket_path, parent=None, idle_exit=None):
    """The warm sidecar: requests {"argv": [...]} in, {"status", "stdout", "stderr"} out, one per connection.

    With ``idle_exit``, once it has answered a request and none comes for that many
    seconds it removes its socket and exits: TensorFlow holds more than half a
    gigabyte, which the rest of a run (training) can use; a TFDV task that comes
    later starts its own interpreter (mlops/stages/validate.py).
    """
    import contextlib
    import io
    import socket
    import threading
    import time

    import tensorflow_data_validation  # noqa: F401 - the whole point: imported once, before the first request

    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(4)

    def watch_parent():
        while parent and os.path.exists(f"/proc/{parent}"):
            time.sleep(1)
        os._exit(0)

    if parent:
        threading.Thread(target=watch_parent, daemon=True).start()
    print("ready", flush=True)
    served = False
    server.settimeout(idle_exit)
    while True:
        try:
            connection, _ = server.accept()
        except socket.timeout:
            if not served:
                continue
            with open(closed_marker(socket_path), "w"):  # tells a later client not to wait for the socket
                pass
            os.unlink(socket_path)  # no new client finds it; one that already connected is still served
            server.settimeout(0.2)
            try:
                connection, _ = server.accept()
            except socket.timeout:
                os._exit(0)
        connection.settimeout(None)
        served = True
        with connection:
            request = json.loads(_receive(connection))
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    status = main(request["argv"])
                except SystemExit as leaving:  # argparse's exit status 2
                    status = leaving.code if isinstance(leaving.code, int) else 1
            connection.sendall(
                json.dumps({"status": status, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}).encode("utf-8")
            )
            connection.shutdown(socket.SHUT_WR)
        release_memory()


def closed_marker(socket_path) -> str:
    """The file an idle sidecar leaves beside its socket when it exits for good."""
    return f"{socket_path}.closed"


def release_memory():
    """Hand freed memory back to the system (Python's and Arrow's allocators keep it otherwise): the
    sidecar lives as long as the run, and the tables of a large validation would otherwise stay
    resident through training. Also used by `mlops run` (this module imports nothing at the top)."""
    import ctypes
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _receive(connection):
    chunks = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return b"".join(chunks).decode("utf-8")
        chunks.append(chunk)


if __name__ == "__main__":
    sys.exit(main())
