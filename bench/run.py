"""Benchmarks: medians over repeats, written to bench/results.md.

    .venv/bin/python bench/run.py [--quick]

What is measured and why:
- ingest: row hashing + split + content hash (pure Python per row) at 10k, 100k, 1M rows:
  the one stage whose cost grows with the data in Python code of ours;
- store: conditional create + read of a 1 KiB object, filesystem vs a real MinIO on
  loopback: the cost of registry operations;
- registry: one model registration (claim, 2 files, manifest, alias) on each backend;
- pipeline: one whole `kfp.local` run on wine (178 rows), the fixed overhead a user sees.
The machine (2 cores, shared) is noisy: read medians and ratios, not single numbers.
"""

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from components.ingest import SplitConfig, ingest_frame
from components.runtime import PROJECT_ROOT as ROOT
from components.storage.fs import FileStore
from components.storage.registry import ModelRegistry
from components.storage.s3 import S3Store
from pipelines.demo_data import write_demo_data
from pipelines.minio_local import MinioServer, minio_binary


def median_seconds(action, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def synthetic(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(8)}
                        | {"colour": rng.choice(["red", "green", "blue"], rows), "y": rng.integers(0, 2, rows)})


def bench_ingest(sizes, repeats):
    rows = []
    for size in sizes:
        frame = synthetic(size)
        seconds = median_seconds(lambda: ingest_frame(frame, "y", SplitConfig()), repeats)
        rows.append((f"ingest {size:,} rows x 10 columns", seconds, f"{size / seconds:,.0f} rows/s"))
    return rows


def bench_store(store, label, repeats):
    payload = b"x" * 1024

    def create_and_read():
        key = f"bench/{uuid.uuid4().hex}"
        store.create(key, payload)
        store.read(key)

    registry = ModelRegistry(store)
    model = b"m" * (1024 * 1024)

    def register():
        version = registry.register("bench", {"model.joblib": model}, metrics={"x": 1.0}, lineage={})
        registry.set_alias("bench", "champion", version.version)

    return [(f"store create+read 1 KiB ({label})", median_seconds(create_and_read, repeats * 10), ""),
            (f"register 1 MiB model + alias ({label})", median_seconds(register, repeats), "")]


def bench_pipeline(repeats):
    with tempfile.TemporaryDirectory() as scratch:
        data = {p.stem: p for p in write_demo_data(Path(scratch) / "data")}
        command = [str(ROOT / ".venv/bin/mlops"), "run", "--data", str(data["wine"]), "--target", "target"]
        seconds = median_seconds(lambda: subprocess.run(command, cwd=scratch, check=True, capture_output=True),
                                 repeats)
    return [("mlops run, wine (178 rows, 4 candidates), kfp.local", seconds, "")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    results = bench_ingest([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000], repeats)
    with tempfile.TemporaryDirectory() as scratch:
        results += bench_store(FileStore(Path(scratch) / "store"), "filesystem", repeats)
        if minio_binary().exists():
            server = MinioServer.with_random_credentials(Path(scratch) / "minio").start()
            try:
                server.create_bucket("bench")
                os.environ.update(server.env())
                results += bench_store(S3Store.from_uri("s3://bench/b"), "MinIO on loopback", repeats)
            finally:
                server.stop()
    results += bench_pipeline(max(1, repeats // 2))

    lines = ["# Benchmark results", "",
             f"Machine: {platform.machine()}, {platform.python_version()}, "
             f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
             f"{time.strftime('%Y-%m-%d')}. Medians of {repeats} repeats (store ops x10). "
             "Command: `.venv/bin/python bench/run.py`.", "",
             "| what | median | throughput |", "| --- | ---: | ---: |"]
    lines += [f"| {what} | {seconds * 1000:,.1f} ms | {extra} |" for what, seconds, extra in results]
    output = ROOT / "bench" / "results.md"
    output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
