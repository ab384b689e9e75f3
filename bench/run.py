"""Benchmarks, side by side in one run: bench/results.json (for machines) and bench/results.md (for people).

    make bench SIZES="1e5 1e6"             # or: .venv/bin/python bench/run.py --sizes 1e5 1e6
    .venv/bin/python bench/run.py --smoke  # a tiny run that checks the harness (part of make test)
    .venv/bin/python bench/run.py --mixed 3e5 1e6  # only the mixed-type table (bench/mixed.py)
    .venv/bin/python bench/run.py --scale 1e6 3e6 1e7  # only `mlops run`, stage by stage (bench/scale.py)

For each size (rows x 20 columns, a synthetic classification table; ingest also at rows x 10
columns, the shape the performance issue states its ingest targets for):
- ingest_vs_floor: ingest + split (read, clean, hash, publish, split, write) over the I/O floor
  measured in the same run: an Arrow CSV read plus a Parquet write of the same table; at 10
  columns, and (ingest_vs_floor_20_columns) at 20; ingest_stage_vs_floor: the ingest stage alone
  (read, clean, hash, publish: the one write of the whole table), at 10 columns;
- validate_vs_raw_tfdv: a raw generate_statistics_from_dataframe call on the whole table (in the
  TFDV interpreter, import excluded) over the validate stage on its splits (with the warm sidecar
  a local run has): the stage's statistics throughput relative to TFDV's own;
- overhead_ratio: `mlops run` over the same stage functions called one after another by a plain
  script (bench/plain_pipeline.py) on the same data;
- peak_rss_gb: the largest total resident memory of `mlops run` and every process under it (RSS
  summed: a page a forked child shares with its parent counts twice), and peak_pss_gb, the same
  with each shared page split between its sharers (PSS: the memory the run really holds).
Then, at the largest size: cache_rerun_ratio (an unchanged re-run over the first run), and
scaling (T(largest) / T(smallest) of `mlops run`, and its exponent). And cli_startup_seconds, and
the same small job (wine: split, four candidates, the best, its test score, registered) as a
plain scikit-learn script, in MLflow (its own throw-away environment, outside the project's
locks) and with `mlops run`. Every figure is a median of repeats; the machine is shared and noisy.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mixed  # noqa: E402 - bench/mixed.py, beside this script
import scale  # noqa: E402 - bench/scale.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MLOPS = str(Path(PYTHON).with_name("mlops"))
TFDV_PYTHON = str(ROOT / ".venv-tfdv" / "bin" / "python")
PEER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kfp-mlops" / "bench"
# 3.18.0's mlflow-skinny 3.18.0 is not on the package index reached here (checked 2026-11-29).
MLFLOW_VERSION = "3.17.2"
# Past this many rows the whole-table baselines (raw TFDV on a pandas frame, the plain scikit-learn
# script) are not run: they hold the whole table in memory, which is what the pipeline avoids there.
WHOLE_TABLE_BASELINES_UP_TO = 3_000_000
# From this many rows each `mlops run` is measured stage by stage (bench/scale.py), once.
STAGE_BY_STAGE_FROM = 1_000_000
TARGETS = {
    "ingest_vs_floor": 3.0,
    "validate_vs_raw_tfdv": 0.8,
    "overhead_ratio": 1.3,
    "cache_rerun_ratio": 0.15,
    "peak_rss_gb": 2.5,
    "scaling_ratio": 12.0,
    "cli_startup_seconds": 1.0,
    "wine_seconds": 12.0,
}


def median_of(action, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def synthetic_csv(rows: int, path: Path, width: int = 20) -> Path:
    """rows x ``width`` columns: width - 3 numbers, 2 categories, a binary label that depends on them
    (and noise)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(rows)
    columns = {f"x{i:02d}": rng.normal(size=rows).round(5) for i in range(width - 3)}
    columns["colour"] = rng.choice(["red", "green", "blue"], rows)
    columns["grade"] = rng.choice([f"g{i}" for i in range(10)], rows)
    signal = (
        columns["x00"] + 0.5 * columns["x01"] - columns["x02"] + (columns["colour"] == "red") + rng.normal(0, 1, rows)
    )
    columns["label"] = np.where(signal > 0, "yes", "no")
    pcsv.write_csv(pa.table(columns), str(path))
    return path


def io_floor(csv: Path, scratch: Path, repeats: int) -> float:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    def read_and_write():
        pq.write_table(pcsv.read_csv(str(csv)), str(scratch / "floor.parquet"))

    return median_of(read_and_write, repeats)


def ingest_seconds(csv: Path, scratch: Path, repeats: int) -> tuple[float, float]:
    """(ingest + split, the ingest stage alone): medians of seconds, each into a fresh store."""
    from mlops.stages.ingest import ingest_source
    from mlops.stages.split import SplitConfig, split_version
    from mlops.store.fs import FileStore

    both, alone = [], []
    for _ in range(repeats):
        store = FileStore(tempfile.mkdtemp(dir=scratch))
        started = time.perf_counter()
        version = ingest_source(str(csv), store, "bench").version
        ingested = time.perf_counter()
        paths = {name: str(Path(store.root, name)) for name in ("train", "validation", "test")}
        split_version(store, version.full_ref, "label", SplitConfig(), paths)
        both.append(time.perf_counter() - started)
        alone.append(ingested - started)
    return statistics.median(both), statistics.median(alone)


RAW_TFDV = """
import sys, time
import pandas as pd
import tensorflow_data_validation as tfdv
frame = pd.read_parquet(sys.argv[1])
started = time.perf_counter()
tfdv.generate_statistics_from_dataframe(frame)
print(time.perf_counter() - started)
"""


def validate_comparison(csv: Path, scratch: Path, repeats: int, raw_tfdv: bool = True) -> tuple[float, float]:
    """(raw TFDV seconds on the whole table (0 unless ``raw_tfdv``), validate stage seconds on its splits with a
    warm sidecar)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from mlops.runners.local import tfdv_sidecar
    from mlops.stages import validate
    from mlops.stages.ingest import ingest_source
    from mlops.stages.split import SplitConfig, split_version
    from mlops.store.fs import FileStore

    raw = 0.0
    if raw_tfdv:
        whole = scratch / "whole.parquet"
        pq.write_table(pcsv.read_csv(str(csv)), str(whole))
        raw = statistics.median(
            float(
                subprocess.run(
                    [TFDV_PYTHON, "-c", RAW_TFDV, str(whole)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                ).stdout.split()[-1]
            )
            for _ in range(repeats)
        )
    store = FileStore(tempfile.mkdtemp(dir=scratch))
    version = ingest_source(str(csv), store, "bench").version
    paths = {name: str(Path(store.root, name)) for name in ("train", "validation", "test")}
    split_version(store, version.full_ref, "label", SplitConfig(), paths)
    with tfdv_sidecar("subprocess"):
        validate._ready(Path(os.environ["MLOPS_TFDV_SOCKET"]))  # warm, as in a run
        stage = median_of(
            lambda: validate.validate_splits(paths, "bench", store, tempfile.mkdtemp(dir=scratch)), repeats
        )
    return raw, stage


class PeakMemory(threading.Thread):
    """The largest total RSS and PSS of a process and all its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_pss, self.running = pid, 0, 0, True

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    @staticmethod
    def process_table() -> tuple[dict[int, list[int]], dict[int, int]]:
        """Every process's children and RSS (bytes), read from /proc."""
        children, rss = {}, {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
                rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        return children, rss

    def _tree_memory(self) -> tuple[int, int]:
        children, rss = self.process_table()
        total, pss, todo = 0, 0, [self.pid]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            pss += self._pss(pid)
            todo.extend(children.get(pid, []))
        return total, pss

    def run(self):
        while self.running:
            rss, pss = self._tree_memory()
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            time.sleep(0.2)


def mlops_run(csv: Path, workdir: Path, cache: bool = False, model: str = "bench") -> tuple[float, float, Path, float]:
    """(seconds, peak RSS in GB, run directory, peak PSS in GB) of one `mlops run`."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        MLOPS,
        "run",
        "--data",
        str(csv),
        "--target",
        "label",
        "--model-name",
        model,
        "--cache" if cache else "--no-cache",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    memory.start()
    stdout, stderr = process.communicate()
    memory.running = False
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"mlops run failed: {stderr.strip()}")
    run_dir = Path(stdout.strip().splitlines()[-1].split("report:", 1)[1].strip()).parent
    return seconds, memory.peak / 1e9, run_dir, memory.peak_pss / 1e9


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Wall seconds per task of a local run, from kfp.local's log (parallel candidates summed)."""
    import re

    started, totals = {}, {}
    pattern = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task|Task) .*?'([\w-]+)'(.*)$")
    for line in (run_dir / "run.log").read_text(encoding="utf-8", errors="replace").splitlines():
        match = pattern.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if not match:
            continue
        hours, minutes, seconds, task, rest = match.groups()
        stamp = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        if "finished" in rest:
            if started.get(task):
                totals[task] = round(totals.get(task, 0.0) + stamp - started[task].pop(0), 3)
        else:
            started.setdefault(task, []).append(stamp)
    return totals


def plain_seconds(csv: Path, scratch: Path) -> float:
    store = tempfile.mkdtemp(dir=scratch)
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, str(ROOT / "bench" / "plain_pipeline.py"), str(csv), "label", store],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started


def cli_startup(repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch, "store").as_uri()
        return {
            " ".join(command): round(
                median_of(
                    lambda c=command: subprocess.run(
                        [MLOPS, *c, *(["--store", store] if c[0] != "--help" else [])], check=True, capture_output=True
                    ),
                    repeats,
                ),
                3,
            )
            for command in (["--help"], ["models", "list"], ["data", "list"])
        }


def peer_environment() -> Path | None:
    """A throw-away virtualenv with MLflow (made once, cached by its version); None when it cannot be made."""
    import shutil

    venv = PEER_CACHE / f"mlflow-{MLFLOW_VERSION}"
    python, ready = venv / "bin" / "python", venv / ".installed"
    if not ready.exists():  # a venv whose install failed half-way is made again
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"mlflow=={MLFLOW_VERSION}"],
            capture_output=True,
            text=True,
        )
        if installed.returncode != 0:
            print(f"MLflow could not be installed: {installed.stderr.strip().splitlines()[-1:]}")
            shutil.rmtree(venv, ignore_errors=True)
            return None
        ready.touch()
    return python


def peers(repeats: int, scratch: Path) -> dict[str, float]:
    from mlops.data.demo import write_demo_data

    data = {p.stem: p for p in write_demo_data(scratch / "demo")}
    peer_dir = ROOT / "bench" / "peers"
    results = {
        "plain scikit-learn script": median_of(
            lambda: subprocess.run(
                [PYTHON, str(peer_dir / "wine_plain.py"), tempfile.mkdtemp(dir=scratch)],
                check=True,
                capture_output=True,
            ),
            repeats,
        )
    }
    mlflow_python = peer_environment()
    if mlflow_python:

        def mlflow_run():
            out = tempfile.mkdtemp(dir=scratch)  # also its cwd: MLflow's default artifact root is ./mlruns
            subprocess.run(
                [str(mlflow_python), str(peer_dir / "wine_mlflow.py"), out], check=True, capture_output=True, cwd=out
            )

        results[f"MLflow {MLFLOW_VERSION} (defaults, SQLite)"] = median_of(mlflow_run, repeats)

    def warm_mlops():
        work = Path(tempfile.mkdtemp(dir=scratch))
        subprocess.run(
            [MLOPS, "run", "--data", str(data["demo-wine"]), "--target", "target", "--no-cache"],
            cwd=work,
            check=True,
            capture_output=True,
        )

    warm_mlops()  # warm the file cache once, as the peers' imports are warm
    results["mlops run (kfp.local, TFDV, report)"] = median_of(warm_mlops, repeats)
    return {name: round(seconds, 2) for name, seconds in results.items()}


def _ratio(value: float | None) -> str:
    return "not run (whole-table baseline)" if value is None else f"{value:.2f}"


def write_outputs(results: dict, out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Benchmark results",
        "",
        f"{results['machine']}; {results['date']}. Medians of {results['repeats']} repeats unless noted. "
        f"Command: `{results['command']}`. Targets from the performance issue in brackets.",
        "",
        "Ingest at rows x 10 columns (the issue's shape for its ingest targets): ingest + split (read, "
        "clean, hash, publish, split, write the splits) and the ingest stage alone (up to the published "
        "data version), each over the I/O floor of the same table in the same run (an Arrow CSV read plus a "
        "Parquet write); the last column is ingest + split at 20 columns.",
        "",
        "| rows | ingest + split / floor [≤ 3] | rows/s [≥ 1M] | ingest stage / floor | rows/s | "
        "ingest + split / floor, 20 columns |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in results["sizes"]:
        key = str(size)
        lines.append(
            f"| {size:,} | {results['ingest_vs_floor'][key]:.2f} | {results['ingest_rows_per_second'][key]:,.0f}"
            f" | {results['ingest_stage_vs_floor'][key]:.2f} | "
            f"{results['ingest_stage_rows_per_second'][key]:,.0f} | "
            f"{results['ingest_vs_floor_20_columns'][key]:.2f} |"
        )
    lines += [
        "",
        "The whole run at rows x 20 columns:",
        "",
        "| rows | validate vs raw TFDV [≥ 0.8] | mlops run / plain script [≤ 1.3] | peak RSS GB, summed "
        "[≤ 2.5] | peak PSS GB [≤ 4] |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in results["sizes"]:
        key = str(size)
        lines.append(
            f"| {size:,} | {_ratio(results['validate_vs_raw_tfdv'][key])} | {_ratio(results['overhead_ratio'][key])} | "
            f"{results['peak_rss_gb'][key]:.2f} | {results['peak_pss_gb'][key]:.2f} |"
        )
    lines += [
        "",
        f"- Unchanged re-run over the first run (KFP's cache, at {results['largest']:,} rows): "
        f"**{results['cache_rerun_ratio']:.2f}** [≤ 0.15]",
        f"- Scaling of `mlops run`, T({results['largest']:,}) / T({results['smallest']:,}): "
        f"**{results['scaling_ratio']:.1f}** [≤ 12]; exponent {results['scaling_exponent']:.2f}",
        "- CLI start-up (median seconds): "
        + ", ".join(f"`mlops {k}` {v:.2f}" for k, v in results["cli_startup_seconds"].items())
        + " [≤ 1]",
        "",
        "Seconds per stage of the largest `mlops run` (candidates summed):",
        "",
        "| stage | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in results["stage_seconds"].items()]
    if results.get("peers"):
        lines += [
            "",
            "The same small job (wine, 178 rows: split, 4 candidates, the best, its test score, "
            "registered), warm, side by side [`mlops run` ≤ 12 s]:",
            "",
            "| how | seconds |",
            "| --- | ---: |",
        ]
        lines += [f"| {name} | {seconds:.1f} |" for name, seconds in results["peers"].items()]
    lines += ["", "![benchmark chart](results.png)", ""]
    kept = ""  # the mixed-type (bench/mixed.py) and scale (bench/scale.py) sections survive a rewrite of the rest
    previous = out_dir / "results.md"
    text = previous.read_text(encoding="utf-8") if previous.exists() else ""
    starts = [text.index(section) for section in (mixed.SECTION, scale.SECTION) if section in text]
    if starts:
        kept = text[min(starts) :]
    (out_dir / "results.md").write_text("\n".join(lines) + ("\n\n" + kept if kept else ""))
    from mlops.reporting.charts import _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3))
    stages = results["stage_seconds"]
    axis.barh(list(stages), list(stages.values()), color="#1f77b4")
    axis.invert_yaxis()
    axis.set_xlabel(f"seconds, mlops run at {results['largest']:,} rows")
    figure.tight_layout()
    figure.savefig(out_dir / "results.png", dpi=100)
    plt.close(figure)


def write_scale_section(found: dict, output: Path) -> None:
    """Add ``found`` (size -> bench/scale.py's measure()) to scale_results.json and rewrite its section."""
    found_path = output / "scale_results.json"
    found = {**(json.loads(found_path.read_text()) if found_path.exists() else {}), **found}
    found_path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    sizes_text = " ".join(f"{s:.0e}".replace("e+0", "e") for s in sorted(int(k) for k in found))
    machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
    command = f'make bench SIZES="{sizes_text}" (or .venv/bin/python bench/run.py --scale {sizes_text})'
    runners = {path.name.split(".")[1]: json.loads(path.read_text()) for path in output.glob("scale_results.*.json")}
    section = scale.markdown(found, machine, time.strftime("%Y-%m-%d"), command, runners)
    scale.write_section(output / "results.md", section)


def scale_on_beam(sizes: list[float], runner: str, output: Path, kill_above_gb: float) -> None:
    """bench/scale.py's runs with `--beam-runner runner`; for spark, the local cluster's processes sampled beside."""
    beside = []
    if runner == "spark":
        cluster = [PYTHON, str(ROOT / "scripts" / "beam" / "cluster.py"), "status"]
        if subprocess.run(cluster, capture_output=True).returncode != 0:
            raise SystemExit("the local Beam cluster is not running: `make beam-cluster-up` first")
        state = Path(os.environ.get("MLOPS_BEAM_STATE_DIR") or ROOT / ".beam")
        beside = [int(path.read_text().split()[0]) for path in sorted(state.glob("*.pid"))]
    output.mkdir(parents=True, exist_ok=True)
    found_path = output / f"scale_results.{runner}.json"
    found = json.loads(found_path.read_text()) if found_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-scale-") as scratch_name:
        for size in (int(size) for size in sizes):
            csv = synthetic_csv(size, Path(scratch_name) / f"data-{size}.csv")
            found[str(size)] = scale.measure(
                csv,
                Path(scratch_name) / f"run-{size}",
                MLOPS,
                PeakMemory,
                kill_above_gb,
                run_options=["--beam-runner", runner],
                beside=beside,
            )
            csv.unlink()
            print(f"{size:,} rows, --beam-runner {runner}: {json.dumps(found[str(size)])}", flush=True)
            found_path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
    sizes_text = " ".join(f"{s:.0e}".replace("e+0", "e") for s in sizes)
    command = f".venv/bin/python bench/run.py --scale {sizes_text} --beam-runner {runner}"
    print(scale.markdown(found, machine, time.strftime("%Y-%m-%d"), command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[2e4, 1e5])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat, no peers, a scratch output")
    parser.add_argument(
        "--output", type=Path, help="where results.json/.md/.png go (default bench/; a scratch directory for --smoke)"
    )
    parser.add_argument(
        "--mixed",
        nargs="+",
        type=float,
        metavar="ROWS",
        help="only the mixed-type table bench at these sizes (e.g. 3e5 1e6); updates its section of results.md",
    )
    parser.add_argument(
        "--scale",
        nargs="+",
        type=float,
        metavar="ROWS",
        help="only `mlops run` at these sizes, in this order, stage by stage (bench/scale.py); adds to "
        "scale_results.json and rewrites its section of results.md",
    )
    parser.add_argument("--kill-above-gb", type=float, default=20.0, help="stop a --scale run past this RSS")
    parser.add_argument(
        "--beam-runner",
        choices=["spark", "direct"],
        help="(--scale) TFDV's statistics on this Beam runner (spark: `make beam-cluster-up` first, its processes "
        "sampled beside the run); results in scale_results.<runner>.json, results.md left alone",
    )
    args = parser.parse_args()
    if args.scale and args.beam_runner:
        scale_on_beam(args.scale, args.beam_runner, args.output or ROOT / "bench", args.kill_above_gb)
        return
    if args.scale:
        output = args.output or ROOT / "bench"
        output.mkdir(parents=True, exist_ok=True)
        found = {}
        with tempfile.TemporaryDirectory(prefix="mlops-bench-scale-") as scratch_name:
            for size in (int(size) for size in args.scale):
                csv = synthetic_csv(size, Path(scratch_name) / f"data-{size}.csv")
                found[str(size)] = scale.measure(
                    csv, Path(scratch_name) / f"run-{size}", MLOPS, PeakMemory, args.kill_above_gb
                )
                csv.unlink()
                print(f"{size:,} rows: {json.dumps(found[str(size)])}", flush=True)
                write_scale_section(found, output)
        print((output / "results.md").read_text())
        return
    if args.mixed:
        sizes = sorted(int(size) for size in args.mixed)
        with tempfile.TemporaryDirectory(prefix="mlops-bench-mixed-") as scratch_name:
            found = mixed.run(sizes, Path(scratch_name), mlops_run, plain_seconds, stage_seconds)
        output = args.output or ROOT / "bench"
        output.mkdir(parents=True, exist_ok=True)
        (output / "mixed_results.json").write_text(json.dumps(found, indent=2, sort_keys=True))
        sizes_text = " ".join(f"{s:.0e}".replace("e+0", "e") for s in args.mixed)
        command = f".venv/bin/python bench/run.py --mixed {sizes_text}"
        machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
        section = mixed.markdown(found, machine, time.strftime("%Y-%m-%d"), command)
        mixed.write_section(output / "results.md", section)
        print(section)
        return
    if args.smoke:
        args.sizes, args.repeats, args.no_peers = [3000], 1, True
    sizes = sorted(int(size) for size in args.sizes)
    results = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "sizes": sizes,
        "command": 'make bench SIZES="' + " ".join(f"{s:.0e}".replace("e+0", "e") for s in args.sizes) + '"',
        "ingest_vs_floor": {},
        "ingest_rows_per_second": {},
        "ingest_stage_vs_floor": {},
        "ingest_stage_rows_per_second": {},
        "ingest_vs_floor_20_columns": {},
        "validate_vs_raw_tfdv": {},
        "overhead_ratio": {},
        "mlops_run_seconds": {},
        "plain_seconds": {},
        "peak_rss_gb": {},
        "peak_pss_gb": {},
        "targets": TARGETS,
    }
    by_stage: dict = {}  # size -> bench/scale.py's measure(), for sizes from STAGE_BY_STAGE_FROM
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as scratch_name:
        scratch = Path(scratch_name)
        for size in sizes:
            key = str(size)
            repeats = args.repeats if size <= 200_000 else max(1, args.repeats - 1) if size < 3_000_000 else 1
            narrow = synthetic_csv(size, scratch / f"data-{size}-10.csv", width=10)
            floor = io_floor(narrow, scratch, repeats)
            ingest, stage = ingest_seconds(narrow, scratch, repeats)
            narrow.unlink()
            results["ingest_vs_floor"][key] = round(ingest / floor, 3)
            results["ingest_rows_per_second"][key] = round(size / ingest)
            results["ingest_stage_vs_floor"][key] = round(stage / floor, 3)
            results["ingest_stage_rows_per_second"][key] = round(size / stage)
            csv = synthetic_csv(size, scratch / f"data-{size}.csv")
            floor = io_floor(csv, scratch, repeats)
            results["ingest_vs_floor_20_columns"][key] = round(ingest_seconds(csv, scratch, repeats)[0] / floor, 3)
            whole_table = size <= WHOLE_TABLE_BASELINES_UP_TO
            raw, stage = validate_comparison(csv, scratch, repeats, raw_tfdv=whole_table)
            results["validate_vs_raw_tfdv"][key] = round(raw / stage, 3) if whole_table else None
            plain = statistics.median(plain_seconds(csv, scratch) for _ in range(repeats)) if whole_table else None
            if size >= STAGE_BY_STAGE_FROM:
                workdir = scratch / f"run-{size}"
                by_stage[key] = scale.measure(csv, workdir, MLOPS, PeakMemory, args.kill_above_gb)
                if by_stage[key]["returncode"]:
                    raise SystemExit(f"mlops run failed at {size:,} rows: {by_stage[key].get('error')}")
                run_dir = sorted((workdir / "runs").glob("*/run.log"))[-1].parent
                measured = by_stage[key]
                runs = [(measured["seconds"], measured["peak_rss_gb"], run_dir, measured["peak_pss_gb"])]
            else:
                runs = [mlops_run(csv, scratch / f"run-{size}-{i}") for i in range(repeats)]
            seconds = statistics.median(run[0] for run in runs)
            results["plain_seconds"][key] = round(plain, 2) if plain else None
            results["mlops_run_seconds"][key] = round(seconds, 2)
            results["overhead_ratio"][key] = round(seconds / plain, 3) if plain else None
            results["peak_rss_gb"][key] = round(max(run[1] for run in runs), 3)
            results["peak_pss_gb"][key] = round(max(run[3] for run in runs), 3)
            results["stage_seconds"] = stage_seconds(runs[-1][2])
            print(
                f"{size:,} rows: ingest/floor {results['ingest_vs_floor'][key]}, validate/raw "
                f"{results['validate_vs_raw_tfdv'][key]}, overhead {results['overhead_ratio'][key]}",
                flush=True,
            )
        largest, smallest = sizes[-1], sizes[0]
        csv = scratch / f"data-{largest}.csv"
        first = mlops_run(csv, scratch / "cache", cache=True)[0]
        rerun = mlops_run(csv, scratch / "cache", cache=True)[0]
        results["cache_rerun_ratio"] = round(rerun / first, 3)
        ratio = results["mlops_run_seconds"][str(largest)] / results["mlops_run_seconds"][str(smallest)]
        results.update(
            largest=largest,
            smallest=smallest,
            scaling_ratio=round(ratio, 2),
            scaling_exponent=round(math.log(ratio) / math.log(largest / smallest), 3) if largest > smallest else 0.0,
        )
        results["cli_startup_seconds"] = cli_startup(max(3, args.repeats))
        results["peers"] = {} if args.no_peers else peers(args.repeats, scratch)
    output = args.output or (Path(tempfile.mkdtemp(prefix="mlops-bench-smoke-")) if args.smoke else ROOT / "bench")
    output.mkdir(parents=True, exist_ok=True)
    write_outputs(results, output)
    if by_stage:
        write_scale_section(by_stage, output)
    print((output / "results.md").read_text())


if __name__ == "__main__":
    main()
