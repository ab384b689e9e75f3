"""Why a task of a local run came from the cache, or why it ran: its cache key's parts, per task and
run, compared with the last run of the same pipeline and model.

kfp.local keys a task's cached outputs by its component, image, command (which holds the
component's own source), parameters and input artifacts (kfp/local/cache.py). The local runner
(mlops/runners/cache_record.py) notes those parts for every task as the run goes and hands them
here as plain data. A record per run is kept beside the run records (mlops.store.runs), written
once with a conditional create:

    runs/<model>/cache/<UTC time>-<run id>.json

The time in the key orders a model's records, so the last run before this one is the key
before this one's. :func:`explain` names, for each task, what changed since that run: the data
version, a parameter, the code (the component's source) or the image, directly in the task's own
key or upstream ("upstream, at split": an input artifact is new because its producer ran).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

from mlops.store.base import NotFound, ObjectStore, StoreError

RECORD_FORMAT = 1
PREFIX = "runs/"
# The parts of a task's cache key a change is named by; "input" is an input artifact that is new
# although nothing in its producer's key changed (the producer is not cacheable, or its cached
# outputs were gone).
PARTS = ("data version", "parameter", "code", "image", "input")
# What a task's entry says about it.
OUTCOMES = (
    "hit",  # its outputs came from the cache
    "miss",  # it ran: nothing cached under its key
    "off",  # it ran: the run had the cache off (--no-cache)
    "never",  # not cacheable: it depends on more than its inputs, and runs every time
    "not reached",  # the run stopped before it
)


def cache_prefix(model: str) -> str:
    return f"{PREFIX}{model}/cache/"


def record_key(model: str, started: dt.datetime, run_id: str) -> str:
    """Where the record of run ``run_id`` of ``model`` goes; ``started`` (UTC) orders the keys."""
    return f"{cache_prefix(model)}{started.strftime('%Y%m%dT%H%M%S%fZ')}-{run_id}.json"


def task_entry(
    task: str,
    outcome: str,
    *,
    data_version: str | None = None,
    parameters: dict | None = None,
    inputs: dict | None = None,
    code: str = "",
    image: str = "",
    outputs: list[str] | None = None,
    stored: bool = False,
) -> dict:
    """One task's entry in a run's record.

    ``parameters``: name -> value as the key holds it (the data version apart); ``inputs``: input
    artifact name -> list of ``{"uri", "metadata", "producer"}`` (a collected input has several;
    ``producer``: the task that wrote it, "" if unknown);
    ``code``: a digest of the component's command and environment (its source is in the command);
    ``outputs``: the URIs of its output artifacts (what tells a consumer's input from whom it came);
    ``stored``: its outputs went into the cache.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    return {
        "task": task,
        "outcome": outcome,
        "data_version": data_version,
        "parameters": parameters or {},
        "inputs": inputs or {},
        "code": code,
        "image": image,
        "outputs": outputs or [],
        "stored": stored,
    }


def run_record(
    *, run_id: str, pipeline: str, model: str, started: dt.datetime, code_version: str, cache: bool, tasks: list[dict]
) -> dict:
    """The record of one run (format RECORD_FORMAT); ``tasks`` in the order they run."""
    return {
        "format": RECORD_FORMAT,
        "run": run_id,
        "pipeline": pipeline,
        "model": model,
        "started_at": started.isoformat(),
        "code_version": code_version,
        "cache": cache,
        "tasks": tasks,
    }


@dataclass(frozen=True)
class Change:
    """One part of a task's key that differs from the last run's."""

    part: str  # one of PARTS
    name: str = ""  # the parameter's or input's name
    before: object = None
    after: object = None
    through: str = ""  # the upstream task whose own key holds the change ("" when it is this task's)

    def describe(self) -> str:
        if self.part == "parameter":
            text = f"parameter {self.name}: {_short(self.before)} → {_short(self.after)}"
        elif self.part == "data version":
            text = f"data version: {_short_ref(self.before)} → {_short_ref(self.after)}"
        elif self.part == "code":
            text = "code: the component's source changed"
        elif self.part == "image":
            text = f"image: {self.before} → {self.after}"
        else:
            text = f"input {self.name}: new outputs of {self.after}"
        return f"{text} (upstream, at {self.through})" if self.through else text


@dataclass(frozen=True)
class Explanation:
    """Whether a task came from the cache, and why (or why not), in one line."""

    task: str
    outcome: str  # one of OUTCOMES
    reason: str
    changes: tuple[Change, ...] = ()
    note: str = ""

    @property
    def cached(self) -> bool:
        return self.outcome == "hit"

    def parts(self) -> set[str]:
        """The parts of the key that changed since the last run (PARTS), this task's or upstream."""
        return {change.part for change in self.changes}

    def to_json(self) -> dict:
        return {**asdict(self), "changes": [asdict(change) for change in self.changes]}

    @classmethod
    def from_json(cls, data: dict) -> Explanation:
        return cls(
            task=data["task"],
            outcome=data["outcome"],
            reason=data["reason"],
            changes=tuple(Change(**change) for change in data.get("changes", [])),
            note=data.get("note", ""),
        )


def explain(record: dict, previous: dict | None) -> list[Explanation]:
    """Each task of ``record``: from the cache or not, and what changed since ``previous`` (the last
    run of the same pipeline and model, or None)."""
    earlier = {task["task"]: task for task in (previous or {}).get("tasks", [])}
    producer = {uri: task["task"] for task in record["tasks"] for uri in task.get("outputs", [])}
    uncached = {task["task"] for task in record["tasks"] if task["outcome"] == "never"}
    causes: dict[str, tuple[Change, ...]] = {}
    explanations = []
    code_moved = previous is not None and previous.get("code_version") != record.get("code_version")
    for task in record["tasks"]:
        name, outcome = task["task"], task["outcome"]
        if outcome == "never":
            explanations.append(
                Explanation(name, outcome, "not cacheable: it reads more than its inputs, so it runs every time")
            )
            continue
        if outcome == "not reached":
            explanations.append(Explanation(name, outcome, "the run stopped before it"))
            continue
        before = earlier.get(name)
        stopped = before is not None and before["outcome"] == "not reached"
        if before is not None and before["outcome"] not in ("hit", "miss", "off"):
            before = None  # nothing of its key to compare with
        changes = _changes(task, before, producer, causes, uncached) if before else ()
        causes[name] = changes
        said = "; ".join(change.describe() for change in changes)
        note = ""
        if outcome == "hit":
            if previous is None:
                reason = "no earlier run of this pipeline and model to compare with"
            elif before is None:
                reason = "the last run stopped before it" if stopped else "it was not in the last run"
            elif changes:
                reason = f"from an earlier run with this key; since the last run: {said}"
            else:
                reason = "same key as the last run"
            if previous is not None and code_moved:
                note = (
                    f"the code version changed since the last run ({previous.get('code_version')} → "
                    f"{record.get('code_version')}), but the key holds only the component's own source, "
                    "not the mlops package it calls: run with --no-cache if that changed"
                )
        elif outcome == "off":
            reason = "the cache was off (--no-cache)" + (f"; since the last run: {said}" if changes else "")
        elif previous is None:
            reason = "no earlier run of this pipeline and model to compare with"
        elif before is None:
            reason = "the last run stopped before it" if stopped else "it was not in the last run"
        elif changes:
            reason = said
        elif before["outcome"] == "off":
            reason = "same key as the last run, which had the cache off"
        elif before["outcome"] == "miss" and not before.get("stored"):
            reason = "same key as the last run, which did not finish it"
        else:
            reason = "same key as the last run, but its cached outputs are gone (cache or run folder deleted)"
        explanations.append(Explanation(name, outcome, reason, changes, note))
    return explanations


def _changes(task: dict, before: dict, producer: dict, causes: dict, uncached: set) -> tuple[Change, ...]:
    """What differs between ``before`` (the last run's) and ``task``: this task's own parts, then
    what its changed inputs carry from upstream."""
    found: list[Change] = []
    if task["data_version"] != before["data_version"]:
        found.append(Change("data version", before=before["data_version"], after=task["data_version"]))
    for name in sorted(set(task["parameters"]) | set(before["parameters"])):
        old, new = before["parameters"].get(name), task["parameters"].get(name)
        if _canonical(old) != _canonical(new):
            found.append(Change("parameter", name, old, new))
    if task["code"] != before["code"]:
        found.append(Change("code", before=before["code"], after=task["code"]))
    if task["image"] != before["image"]:
        found.append(Change("image", before=before["image"], after=task["image"]))
    for name in sorted(set(task["inputs"]) | set(before["inputs"])):
        new_input = task["inputs"].get(name, [])
        if _identity(new_input) == _identity(before["inputs"].get(name, [])):
            continue
        sources = sorted({producer.get(a["uri"]) or a.get("producer") or "an earlier task" for a in new_input})
        inherited = [
            Change(c.part, c.name, c.before, c.after, c.through or source)
            for source in sources
            for c in causes.get(source, ())
        ]
        shown = [f"{source}, which runs every time" if source in uncached else source for source in sources]
        found.extend(inherited or [Change("input", name, after=", ".join(shown))])
    unique: dict[tuple, Change] = {}
    for change in found:  # the same change reached through several inputs: named once
        unique.setdefault((change.part, change.name, _canonical(change.before), _canonical(change.after)), change)
    return tuple(unique.values())


def save(store: ObjectStore, key: str, record: dict) -> None:
    """Publish ``record`` under ``key``, atomically and once (a conditional create)."""
    store.create(key, json.dumps(record, sort_keys=True, indent=1, default=str).encode("utf-8"))


def previous_key(store: ObjectStore, key: str, model: str, pipeline: str) -> str | None:
    """The key of the last record of ``model`` and ``pipeline`` before ``key``, if any."""
    for candidate in reversed([k for k in store.list(cache_prefix(model)) if k < key and k.endswith(".json")]):
        try:
            if json.loads(store.read(candidate)).get("pipeline") == pipeline:
                return candidate
        except (NotFound, ValueError):
            continue
    return None


def record_and_explain(store: ObjectStore, key: str, record: dict) -> dict:
    """Compare ``record`` with the last one of its pipeline and model, and publish it under ``key``
    with the run it was compared with (``previous``) and its ``explanation``; return what was published."""
    before = previous_key(store, key, record["model"], record["pipeline"])
    previous = json.loads(store.read(before)) if before else None
    record = {
        **record,
        "previous": previous["run"] if previous else None,
        "explanation": [e.to_json() for e in explain(record, previous)],
    }
    save(store, key, record)
    return record


def load_run(store: ObjectStore, model: str, run_id: str) -> dict:
    """The cache record of run ``run_id`` of ``model``; NotFound when it has none."""
    keys = [k for k in store.list(cache_prefix(model)) if k.endswith(f"-{run_id}.json")]
    if not keys:
        raise NotFound(f"no cache record of run {run_id} of {model} in {store.uri}")
    try:
        return json.loads(store.read(keys[-1]))
    except ValueError:
        raise StoreError(f"the cache record {keys[-1]} is not JSON") from None


def explanations(record: dict) -> list[Explanation]:
    return [Explanation.from_json(data) for data in record.get("explanation", [])]


def explain_lines(record: dict) -> list[str]:
    """The explanation of ``record`` as lines for a terminal: one per task, then any notes."""
    found = explanations(record)
    against = f"the last run, {record['previous']}" if record.get("previous") else "no earlier run"
    lines = [f"cache: {sum(e.cached for e in found)} of {len(found)} tasks from the cache (compared with {against})"]
    width = max((len(e.task) for e in found), default=0)
    for e in found:
        lines.append(f"  {e.task:<{width}}  {_WORDS[e.outcome]:<8}  {e.reason}")
    notes = sorted({e.note for e in found if e.note})
    lines.extend(f"  note: {note}" for note in notes)
    return lines


# How a table shows each outcome.
_WORDS = {"hit": "cached", "miss": "ran", "off": "ran", "never": "no cache", "not reached": "not run"}


def outcome_word(outcome: str) -> str:
    return _WORDS[outcome]


def _identity(artifacts: list[dict]) -> str:
    """What the key holds of input artifacts: each one's URI and metadata."""
    return _canonical([{"uri": a.get("uri"), "metadata": a.get("metadata")} for a in artifacts])


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(value, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > limit:
        keep = (limit - 1) // 2
        text = f"{text[:keep]}…{text[-keep:]}"
    return text


def _short_ref(ref) -> str:
    """``name@<64 hex>`` as ``name@<12 hex>``."""
    if not isinstance(ref, str) or "@" not in ref:
        return str(ref)
    name, version = ref.rsplit("@", 1)
    return f"{name}@{version[:12]}"
