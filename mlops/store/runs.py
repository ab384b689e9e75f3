"""Run records: one small JSON object per local pipeline run, succeeded or failed, and their comparison.

Layout under the store (written once with a conditional create, never rewritten):

    runs/<model>/<run id>.json

The run id is the run's directory name under the runs folder (``<local time>-<model>-<pid>``).
A record holds what `mlops runs show` and `mlops runs compare` need: the run's parameters,
the data version it read, the code version, the model version it registered and that
version's metrics, or the failing stage's one-line reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from mlops.store.base import AlreadyExists, NotFound, ObjectStore, StoreError
from mlops.store.registry import dumps

RUN_FORMAT = 1
PREFIX = "runs/"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STATES = ("succeeded", "failed")
# The sections of a record that `compare` puts side by side, in this order.
SECTIONS = ("parameters", "data", "code", "metrics")


def run_key(model: str, run_id: str) -> str:
    return f"{PREFIX}{model}/{run_id}.json"


def write_run(store: ObjectStore, record: dict) -> str:
    """Publish ``record`` (see :func:`run_record`) under its key, atomically and once; return the key."""
    from mlops.store.registry import validate_name

    validate_name("model", record["model"])
    if not RUN_ID_PATTERN.match(record["id"]):
        raise StoreError(f"invalid run id {record['id']!r}")
    key = run_key(record["model"], record["id"])
    try:
        store.create(key, dumps(record))
    except AlreadyExists:
        raise StoreError(f"a run record {key} exists already in {store.uri}") from None
    return key


def run_record(
    *,
    run_id: str,
    model: str,
    state: str,
    reason: str,
    started_at: str,
    finished_at: str,
    parameters: dict,
    data_version: str | None,
    data_source: str,
    code_version: str,
    lineage: dict | None = None,
    registered: dict | None = None,
    environment: dict | None = None,
    details: dict | None = None,
) -> dict:
    """The record of one run (format RUN_FORMAT).

    ``parameters``: the run's pipeline parameters (the search space as a mapping). ``lineage``:
    the registered version's lineage, for its metrics, candidate and environment (None when the
    run failed before register). ``registered``: ref, promoted, promotion. ``environment``: locks and
    packages, when there is no lineage to take them from. ``details``: where the run's files are on
    the machine that ran it (run directory, log), the runner and the cache.
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    lineage = lineage or {}
    environment = lineage.get("environment") or environment or {}
    return {
        "format": RUN_FORMAT,
        "id": run_id,
        "engine": "local",
        "pipeline": "training",
        "model": model,
        "state": state,
        "reason": reason,
        "started_at": started_at,
        "finished_at": finished_at,
        "parameters": parameters,
        "data": {"version": data_version or lineage.get("data", {}).get("ref"), "source": data_source},
        "code": {
            "version": code_version,
            "locks": environment.get("locks", {}),
            "packages": environment.get("packages", {}),
        },
        "model_version": registered or None,
        "candidate": lineage.get("params", {}).get("candidate", {}).get("id"),
        "metrics": {
            split: lineage.get("metrics", {}).get(split, {})
            for split in ("validation", "test")
            if lineage.get("metrics")
        },
        "details": details or {},
    }


def list_runs(store: ObjectStore, model: str | None = None) -> list[dict]:
    """Every run record (of ``model``, or of all models), newest first."""
    prefix = f"{PREFIX}{model}/" if model else PREFIX
    records = []
    for key in store.list(prefix):
        if not key.endswith(".json") or key.count("/") != 2:
            continue
        try:
            records.append(json.loads(store.read(key)))
        except (NotFound, ValueError):
            continue  # gone meanwhile, or not one of ours
    return sorted(records, key=lambda r: (r.get("started_at") or "", r.get("id") or ""), reverse=True)


def get_run(store: ObjectStore, run_id: str) -> dict:
    """The record of run ``run_id`` (its full id, or a prefix or suffix naming one run)."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise NotFound("no run id given")
    records = list_runs(store)
    exact = [r for r in records if r.get("id") == run_id]
    matches = exact or [r for r in records if str(r.get("id", "")).startswith(run_id) or r["id"].endswith(run_id)]
    if not matches:
        raise NotFound(f"no local run {run_id!r} in {store.uri} (`mlops runs list` shows them)")
    if len(matches) > 1:
        shown = ", ".join(r["id"] for r in matches[:5])
        raise StoreError(f"{run_id!r} names {len(matches)} runs ({shown}): give more of the run id")
    return matches[0]


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested mappings as dotted keys (``search_space.candidates.classification.ridge.alpha``)."""
    if isinstance(value, dict):  # an empty mapping has no rows
        out: dict[str, object] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def compare_runs(records: Iterable[dict]) -> dict:
    """The runs side by side: one row per parameter, data version, code version and metric.

    Returns ``{"runs": [{id, model, state, reason, started_at, model_version}], "rows":
    [{section, name, values: [...], differs: bool}]}``, values in the order of ``records``
    (None where a run lacks the field). A row differs when its values are not all equal; a run
    with nothing in a section (a failed run has no metrics) does not make that section's rows differ.
    """
    records = list(records)
    if len(records) < 2:
        raise StoreError("compare needs at least two runs")
    columns = []
    for section in SECTIONS:
        fields: list[dict[str, object]] = []
        for record in records:
            part = record.get(section) or {}
            if section == "code":
                part = {"version": part.get("version"), "locks": part.get("locks"), "packages": part.get("packages")}
            fields.append(flatten(part))
        columns.append((section, fields))
    rows = []
    for section, fields in columns:
        names = sorted({name for field in fields for name in field if name})
        for name in names:
            values = [field.get(name) for field in fields]
            known = [value for value, field in zip(values, fields, strict=True) if field]
            canonical = {json.dumps(v, sort_keys=True, default=str) for v in known}
            rows.append({"section": section, "name": name, "values": values, "differs": len(canonical) > 1})
    runs = [
        {
            "id": r.get("id"),
            "model": r.get("model"),
            "state": r.get("state"),
            "reason": r.get("reason") or "",
            "started_at": r.get("started_at"),
            "model_version": (r.get("model_version") or {}).get("ref"),
        }
        for r in records
    ]
    return {"runs": runs, "rows": rows}


def format_value(value, limit: int = 40) -> str:
    """A compared value as a short cell: numbers with 4 decimals, long text cut in the middle."""
    if value is None:
        return "-"
    if value == "":
        return '""'
    if isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    if len(text) > limit:
        keep = (limit - 1) // 2
        text = f"{text[:keep]}…{text[-keep:]}"
    return text
