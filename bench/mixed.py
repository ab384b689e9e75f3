"""The mixed-type table bench: a table that looks like real ones (run through bench/run.py --mixed).

    .venv/bin/python bench/run.py --mixed 3e5 1e6

rows x 12 columns: 5 numbers (two with 5% missing), a low-cardinality category (6 levels, 3% missing),
a high-cardinality one (5,000 levels), a boolean, a datetime over three years with times of day, a row
ID, and a binary label that depends on the numbers, the category, the month and the high-cardinality
level's group. Measured per size: `mlops run` against the plain script doing the same stages and
candidates (overhead ratio, target <= 1.3), and each candidate's training time on the prepared training
split at a quarter of the rows and at all of them (the exponent of the growth: 1 is linear).
The results replace the "Mixed-type table" section of bench/results.md; everything else is kept.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

SECTION = "## Mixed-type table"
TARGETS = {"overhead_ratio": 1.3, "candidate_exponent": 1.15}


def mixed_csv(rows: int, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(rows + 1)
    x = {f"x{i}": rng.normal(size=rows).round(4) for i in range(5)}
    for name in ("x3", "x4"):
        x[name] = np.where(rng.uniform(size=rows) < 0.05, np.nan, x[name])
    channel = rng.choice(["web", "store", "phone", "mail", "partner", "kiosk"], rows).astype(object)
    channel[rng.uniform(size=rows) < 0.03] = None
    level = rng.integers(0, 5000, rows)
    stamps = np.datetime64("2021-01-01T00:00") + rng.integers(0, 3 * 365 * 24 * 60, rows).astype("timedelta64[m]")
    month = stamps.astype("datetime64[M]").astype(int) % 12
    signal = (
        x["x0"]
        - 0.5 * x["x1"]
        + np.nan_to_num(x["x3"])
        + (channel == "web")
        + np.cos(month / 12 * 2 * np.pi)
        + (level % 7 < 3)
        + rng.normal(0, 1, rows)
    )
    table = {
        **x,
        "channel": channel,
        "merchant": np.char.add("m", level.astype(str)),
        "member": rng.uniform(size=rows) < 0.3,
        "created": np.datetime_as_string(stamps, unit="m"),
        "order_id": np.char.add("o", np.arange(rows).astype(str)),
        "label": np.where(signal > 1.0, "yes", "no"),
    }
    pcsv.write_csv(pa.table(table), str(path))
    return path


def candidate_seconds(csv: Path) -> dict[str, dict]:
    """family/params -> seconds to fit on a quarter of the training split and on all of it, and the exponent."""
    from mlops.stages.ingest import clean_table, load_table
    from mlops.stages.prepare import fit_preprocessor
    from mlops.stages.search_space import load_search_space
    from mlops.stages.split import SplitConfig, split_table
    from mlops.stages.train import expand_search_space, make_estimator, one_thread

    cleaned, _ = clean_table(load_table(str(csv)))  # as the ingest and split stages read it
    train = split_table(cleaned, "label", SplitConfig()).frames()["train"]
    transform, info = fit_preprocessor(train, "label")
    features, labels = transform.transform(train.drop(columns=["label"])), train["label"].to_numpy()
    result = {}
    # The candidates mlops run trains on this table (the default search space is size-aware), fitted as
    # train_candidate fits them (one thread).
    sizes = {"train_rows": len(labels), "model_inputs": info["output_features"]}
    for candidate in expand_search_space(load_search_space(), info["task"], seed=42, **sizes):
        timings = []
        for share in (4, 1):
            rows = len(labels) // share
            params = dict(candidate["params"])
            if isinstance(params.get("max_samples"), int):
                params["max_samples"] = min(params["max_samples"], rows)
            estimator = make_estimator(candidate["family"], params, info["task"], seed=42)
            started = time.perf_counter()
            with one_thread():
                estimator.fit(features[:rows], labels[:rows])
            timings.append(time.perf_counter() - started)
        exponent = math.log(max(timings[1], 1e-3) / max(timings[0], 1e-3)) / math.log(4)
        result[candidate["id"]] = {
            "quarter": round(timings[0], 2),
            "all": round(timings[1], 2),
            "exponent": round(exponent, 2),
            "train_rows": len(labels),
        }
    result["_features"] = {"inputs": info["output_features"], "kinds": info["features"]}
    return result


def run(sizes: list[int], scratch: Path, mlops_run, plain_seconds, stage_seconds) -> dict:
    results = {}
    for size in sizes:
        csv = mixed_csv(size, scratch / f"mixed-{size}.csv")
        plain = plain_seconds(csv, scratch)
        seconds, rss, run_dir, _ = mlops_run(csv, scratch / f"mixed-run-{size}", model="bench-mixed")
        results[str(size)] = {
            "mlops_run_seconds": round(seconds, 1),
            "plain_seconds": round(plain, 1),
            "overhead_ratio": round(seconds / plain, 3),
            "peak_rss_gb": round(rss, 2),
            "stage_seconds": stage_seconds(run_dir),
            "candidates": candidate_seconds(csv),
        }
        print(f"mixed {size:,} rows: overhead {results[str(size)]['overhead_ratio']}", flush=True)
    return results


def markdown(results: dict, machine: str, date: str, command: str) -> str:
    lines = [
        SECTION,
        "",
        f"{date}, {machine}, one repeat each (the machine is shared and noisy). Reproduce: `{command}`.",
        "A table that looks like real ones: 5 numbers (2 with 5% missing), a 6-level category (3% missing), a "
        "5,000-level category, a boolean, a datetime with times of day, a row ID and a binary label. Prepare "
        "decides (mlops.stages.features): the ID dropped, the datetime as calendar parts, the 5,000-level "
        "category hashed into 32 columns, the rest numeric or one-hot.",
        "",
        f"| rows | mlops run s | plain script s | overhead [≤ {TARGETS['overhead_ratio']}] | peak RSS GB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, row in results.items():
        lines.append(
            f"| {int(size):,} | {row['mlops_run_seconds']} | {row['plain_seconds']} | {row['overhead_ratio']} "
            f"| {row['peak_rss_gb']} |"
        )
    lines += [
        "",
        "Training seconds per candidate on the prepared training split (a quarter of its rows, then all; "
        f"exponent = log(T(all)/T(quarter)) / log 4, 1 is linear [≤ {TARGETS['candidate_exponent']}]):",
        "",
        "| rows | candidate | train rows | quarter s | all s | exponent |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for size, row in results.items():
        for name, timing in row["candidates"].items():
            if name.startswith("_"):
                continue
            lines.append(
                f"| {int(size):,} | {name} | {timing['train_rows']:,} | {timing['quarter']} | {timing['all']} "
                f"| {timing['exponent']} |"
            )
    return "\n".join(lines) + "\n"


def write_section(results_md: Path, section: str) -> None:
    """Replace the mixed-type section of results.md (or add it at the end); keep everything else."""
    text = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if SECTION in text:
        before, _, rest = text.partition(SECTION)
        after = rest.split("\n## ", 1)
        tail = "\n## " + after[1] if len(after) > 1 else ""
        text = before + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text, encoding="utf-8")
