"""Ten million rows: one `mlops run` at each size, with its wall time and peak memory stage by stage.

    .venv/bin/python bench/run.py --scale 1e6 3e6 1e7     # updates results.md's "Ten million rows" section

The table is bench/run.py's synthetic one (rows x 20 columns). The process tree of the run is sampled
every 0.2 s (RSS and PSS of every process under `mlops run`, as bench/run.py's PeakMemory does); each
sample falls in the task kfp.local's log says was running, so each stage gets its wall seconds (parallel
candidates summed, as the main table) and the peak PSS of the whole tree while it ran, with the process
that held most of it. A run whose tree passes --kill-above-gb of RSS is stopped and recorded as such.

    .venv/bin/python bench/run.py --scale 3e6 --beam-runner spark    # with `make beam-cluster-up` running

passes --beam-runner to each run (TFDV's statistics on the local Spark cluster, docs/beam.md) and samples
the cluster's processes too (they are not the run's children: "beside" in the results); the results go to
scale_results.spark.json, and results.md is left alone.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

SECTION = "## Ten million rows"
LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task|Task) .*?'([\w-]+)'(.*)$")


def _clock(seconds: float) -> float:
    """Seconds since local midnight, the clock of kfp.local's log lines."""
    local = time.localtime(seconds)
    return local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec + seconds % 1


def _command_of(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in words if w]
    # the interesting word: a script, a module or a tool after the interpreter
    shown = [Path(w).name for w in words[:4] if not w.startswith("-")]
    return " ".join(shown[:3]) or "?"


class TreeSampler:
    """Samples of (clock, RSS, PSS, the largest process by PSS and its PSS, the PSS beside) of a process tree;
    "beside": the trees of ``beside`` pids, processes the run uses but did not start (a Beam cluster)."""

    def __init__(self, pid: int, peak_memory_class, kill_above_bytes: float, beside=()):
        self.tree = peak_memory_class(pid)
        self.pid, self.kill_above, self.samples, self.killed = pid, kill_above_bytes, [], False
        self.beside = list(beside)

    def sample(self) -> None:
        children, rss = self.tree.process_table()
        todo, total, pss, largest = [self.pid], 0, 0, (0, 0)
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            mine = self.tree._pss(pid)
            pss += mine
            largest = max(largest, (mine, pid))
            todo.extend(children.get(pid, []))
        todo, beside = list(self.beside), 0
        while todo:
            pid = todo.pop()
            beside += self.tree._pss(pid)
            todo.extend(children.get(pid, []))
        self.samples.append((_clock(time.time()), total, pss, _command_of(largest[1]), largest[0], beside))
        if total > self.kill_above and not self.killed:
            self.killed = True
            subprocess.run(["kill", "--", f"-{self.pid}"], check=False)


def stage_intervals(run_log: Path) -> list[tuple[str, float, float]]:
    """(task, start, end) of every task kfp.local ran, from its log."""
    started: dict[str, list[float]] = {}
    found = []
    for line in run_log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = LOG_LINE.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if not match:
            continue
        hours, minutes, seconds, task, rest = match.groups()
        stamp = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        if "finished" in rest or "failed" in rest:
            if started.get(task):
                found.append((task, started[task].pop(0), stamp))
        else:
            started.setdefault(task, []).append(stamp)
    return found


def by_stage(intervals, samples) -> dict[str, dict]:
    """Per task name: wall seconds (summed over its runs) and the tree's peak PSS while it ran."""
    stages: dict[str, dict] = {}
    for task, start, end in intervals:
        row = stages.setdefault(task, {"seconds": 0.0, "peak_pss_gb": 0.0, "largest": "", "largest_pss_gb": 0.0})
        row["seconds"] = round(row["seconds"] + end - start, 1)
        for clock, _, pss, command, largest, beside in samples:
            if start <= clock <= end and pss / 1e9 > row["peak_pss_gb"]:
                row.update(peak_pss_gb=round(pss / 1e9, 2), largest=command, largest_pss_gb=round(largest / 1e9, 2))
            if beside and start <= clock <= end:
                row["beside_peak_pss_gb"] = max(row.get("beside_peak_pss_gb", 0.0), round(beside / 1e9, 2))
    return stages


def measure(
    csv: Path,
    workdir: Path,
    mlops: str,
    peak_memory_class,
    kill_above_gb: float,
    env=None,
    run_options=(),
    beside=(),
) -> dict:
    """One `mlops run --no-cache [run_options]` on ``csv``: seconds, peak RSS and PSS, and :func:`by_stage`;
    with ``beside`` (pids of a Beam cluster the run submits to), each stage's peak PSS of their trees too."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [mlops, "run", "--data", str(csv), "--target", "label", "--model-name", "scale", "--no-cache"]
    command += list(run_options)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    sampler = TreeSampler(process.pid, peak_memory_class, kill_above_gb * 1e9, beside)
    done = threading.Event()

    def watch():
        while not done.is_set():
            sampler.sample()
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = process.communicate()
    done.set()
    watcher.join()
    seconds = time.perf_counter() - started
    result = {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(max(s[1] for s in sampler.samples) / 1e9, 2),
        "peak_pss_gb": round(max(s[2] for s in sampler.samples) / 1e9, 2),
        "returncode": process.returncode,
        "killed_above_gb": kill_above_gb if sampler.killed else None,
    }
    if run_options:
        result["run_options"] = list(run_options)
    if beside:
        result["beside_peak_pss_gb"] = round(max(s[5] for s in sampler.samples) / 1e9, 2)
    run_dirs = sorted((workdir / "runs").glob("*/run.log")) if (workdir / "runs").exists() else []
    if process.returncode != 0:
        result["error"] = (stderr.strip().splitlines() or ["?"])[-1][:300]
    if run_dirs:
        result["stages"] = by_stage(stage_intervals(run_dirs[-1]), sampler.samples)
        trained = [line for line in stdout.splitlines() if line.startswith("trained:")]
        result["trained"] = trained[0].split(":", 1)[1].strip() if trained else ""
    return result


# The training pipeline's stages in their order (results come back from JSON with sorted keys).
PIPELINE_ORDER = [
    "ingest",
    "split",
    "validate",
    "prepare",
    "expand-candidates",
    "train",
    "select-best",
    "evaluate",
    "register",
    "report",
]


def markdown(results: dict, machine: str, date: str, command: str, runners: dict | None = None) -> str:
    """The section; ``runners``: the same runs with TFDV's statistics on a Beam runner (runner -> results
    as ``results``), shown beside the in-process ones at the sizes both have."""
    sizes = sorted(results, key=int)
    lines = [
        SECTION,
        "",
        f"{date}, {machine}, one run per size. Reproduce: `{command}`. The synthetic table of the main bench "
        "(rows x 20 columns), one `mlops run --no-cache` each; peak PSS is the whole process tree's (the run, "
        "the task server, the TFDV sidecar and each task), sampled every 0.2 s.",
        "",
        "| rows | seconds | T / T(smallest) | peak RSS GB | peak PSS GB | trained on |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    first = results[sizes[0]]["seconds"]
    for size in sizes:
        row = results[size]
        status = "" if row["returncode"] == 0 else f" (failed: {row.get('error', '')})"
        if row.get("killed_above_gb"):
            status = f" (stopped above {row['killed_above_gb']} GB RSS)"
        lines.append(
            f"| {int(size):,} | {row['seconds']:.0f}{status} | {row['seconds'] / first:.1f} | "
            f"{row['peak_rss_gb']:.2f} | {row['peak_pss_gb']:.2f} | {row.get('trained') or '-'} |"
        )
    seen = dict.fromkeys(stage for size in sizes for stage in results[size].get("stages", {}))
    stages = sorted(
        seen, key=lambda stage: PIPELINE_ORDER.index(stage) if stage in PIPELINE_ORDER else len(PIPELINE_ORDER)
    )
    lines += [
        "",
        "Stage by stage: wall seconds, and the peak PSS of the whole tree while the stage ran (the process "
        "holding most of it, and its PSS):",
        "",
        "| stage | " + " | ".join(f"{int(size):,} rows" for size in sizes) + " |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " |",
    ]
    for stage in stages:
        cells = []
        for size in sizes:
            row = results[size].get("stages", {}).get(stage)
            beside = f"; Beam cluster {row['beside_peak_pss_gb']:.2f} GB" if row and "beside_peak_pss_gb" in row else ""
            cells.append(
                f"{row['seconds']:.0f} s, {row['peak_pss_gb']:.2f} GB ({row['largest']} {row['largest_pss_gb']:.2f}"
                f"{beside})"
                if row
                else "-"
            )
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines + _beside_runners(results, runners or {})) + "\n"


def _beside_runners(results: dict, runners: dict) -> list[str]:
    rows = []
    for runner, found in sorted(runners.items()):
        for size in sorted(set(found) & set(results), key=int):
            here, there = results[size], found[size]
            validate_here = here.get("stages", {}).get("validate", {})
            validate_there = there.get("stages", {}).get("validate", {})
            rows.append(
                f"| {int(size):,} | in process (Beam's DirectRunner past MLOPS_TFDV_BEAM_OVER_ROWS) | "
                f"{here['seconds']:.0f} | {here['peak_pss_gb']:.2f} | {validate_here.get('seconds', 0):.0f} | - |"
            )
            rows.append(
                f"| {int(size):,} | `--beam-runner {runner}` (`make beam-cluster-up`) | {there['seconds']:.0f} | "
                f"{there['peak_pss_gb']:.2f} | {validate_there.get('seconds', 0):.0f} | "
                f"{validate_there.get('beside_peak_pss_gb', 0):.2f} |"
            )
    if not rows:
        return []
    return [
        "",
        "Data validation on a distributed Beam runner beside the in-process run (`bench/run.py --scale SIZE "
        "--beam-runner RUNNER`, scale_results.RUNNER.json; the runner's own processes are sampled beside the run, "
        "not counted in its tree):",
        "",
        "| rows | statistics | run seconds | run's peak PSS GB | validate seconds | runner's peak PSS GB |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def write_section(results_md: Path, section: str) -> None:
    """Replace this section of results.md (or add it at the end); keep everything else."""
    text = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if SECTION in text:
        before, _, rest = text.partition(SECTION)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text, encoding="utf-8")
