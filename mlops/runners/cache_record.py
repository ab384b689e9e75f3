"""The cache key of every task of a local run, as kfp.local computes it, recorded while the run goes.

kfp.local looks a task up in its cache (kfp/local/cache.py) through ``get_local_cache()``.
While a training run goes, :func:`recorded` puts a :class:`LocalCache` of its own there: the
same class, so the same keys, the same entries and the same hits, and it notes for each task the
parts of its key (data version, parameters, input artifacts, code, image), whether the lookup hit
and what it produced. With the cache off (``--no-cache``) it looks nothing up and stores nothing,
but still notes the keys, so the next run can be compared with this one.

When the run ends, succeeded or not, the record goes to the store beside the run records, with
its explanation (mlops.reporting.cache_explain); a run that succeeded gets the explanation as the
Cache section of its report. Nothing here can fail a run: a record that cannot be written is one
warning line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
from pathlib import Path

from kfp import dsl
from kfp.local import cache as kfp_cache
from kfp.local import config as kfp_config

from mlops.reporting import cache_explain

# The parameter that carries the data version into a key (split's; the tasks after it get it
# inside their input artifacts, and a change reaches them through split).
DATA_VERSION_PARAMETER = "data_version"


@contextlib.contextmanager
def recorded(pipeline, arguments: dict, run_dir: Path, cache: bool, emit):
    """Record the cache keys of ``pipeline``'s tasks while the block runs it; publish the record on exit."""
    recording = Recording(pipeline, arguments, run_dir, cache, emit)
    original = kfp_cache.get_local_cache
    kfp_cache.get_local_cache = recording.local_cache  # what kfp.local's task executor calls, per task
    try:
        yield recording
    finally:
        kfp_cache.get_local_cache = original
        recording.publish()


class Recording:
    """What a run's cache lookups showed, task by task (see the module docstring)."""

    def __init__(self, pipeline, arguments: dict, run_dir: Path, cache: bool, emit):
        self.spec = pipeline.pipeline_spec
        self.arguments, self.run_dir, self.cache, self.emit = arguments, run_dir, cache, emit
        self.started = dt.datetime.now(dt.timezone.utc)
        self.order, self.names = _tasks_in_order(self.spec)
        self.entries: dict[str, dict] = {}  # cache key -> what the task's lookup showed
        self.lock = threading.Lock()
        self.local: kfp_cache.LocalCache | None = None
        self.published: dict | None = None  # the record as published, with its explanation
        self.failed: list[str] = []

    def local_cache(self):
        """Stands in for ``kfp.local.cache.get_local_cache`` during the run."""
        settings = kfp_config.LocalExecutionConfig.instance
        if settings is None:
            return None
        with self.lock:
            if self.local is None:
                root = settings.cache_root or os.path.join(settings.pipeline_root, ".kfp_cache")
                self.local = _RecordingCache(root, self, enabled=bool(settings.enable_caching))
            return self.local

    # What _RecordingCache reports; none of it may raise into kfp.

    def keyed(self, key: str, component: str, image: str, command: list, arguments: dict, env: dict) -> None:
        with self._guarded("key"):
            name = self.names.get(component, component.removeprefix("comp-"))
            parameters, inputs, data_version, item = {}, {}, None, None
            for argument, value in arguments.items():
                artifacts = value if isinstance(value, list) else [value]
                if artifacts and all(isinstance(a, dsl.Artifact) for a in artifacts):
                    inputs[argument] = [
                        {"uri": a.uri, "metadata": dict(a.metadata), "producer": self._producer(a.uri)}
                        for a in artifacts
                    ]
                elif argument == DATA_VERSION_PARAMETER:
                    data_version = value
                else:
                    parameters[argument] = value
                    if isinstance(value, dict) and "id" in value:  # a loop item (a candidate)
                        item = value["id"]
            code = json.dumps({"component": component, "command": command, "env": env}, sort_keys=True)
            with self.lock:
                self.entries[key] = {
                    "task": f"{name}[{item}]" if item is not None else name,
                    "spec_task": name,
                    "data_version": data_version,
                    "parameters": parameters,
                    "inputs": inputs,
                    "code": hashlib.sha256(code.encode("utf-8")).hexdigest(),
                    "image": image,
                    "outputs": [],
                    "looked_up": False,
                    "hit": False,
                    "stored": False,
                }

    def looked_up(self, key: str, outputs: dict | None) -> None:
        with self._guarded("lookup"), self.lock:
            entry = self.entries[key]
            entry["looked_up"], entry["hit"] = True, outputs is not None
            if outputs is not None:
                entry["outputs"] = _uris(outputs)

    def produced(self, key: str, outputs: dict, stored: bool) -> None:
        with self._guarded("outputs"), self.lock:
            entry = self.entries[key]
            entry["outputs"], entry["stored"] = _uris(outputs), stored

    def _producer(self, uri: str) -> str:
        """The task that wrote an artifact: kfp.local puts it under ``<root>/<run>/<task>/<output>``."""
        task = Path(uri).parent.name
        return task if any(task == name for name, _ in self.order) else ""

    @contextlib.contextmanager
    def _guarded(self, what: str):
        try:
            yield
        except Exception as error:  # noqa: BLE001 - recording must never fail a task
            self.failed.append(f"{what}: {type(error).__name__}: {error}")

    # After the run.

    def record(self) -> dict:
        """The run's record (mlops.reporting.cache_explain.run_record), tasks in the order they run."""
        tasks = []
        entries = list(self.entries.values())
        for name, cacheable in self.order:
            if not cacheable:
                tasks.append(cache_explain.task_entry(name, "never"))
                continue
            mine = sorted((e for e in entries if e["spec_task"] == name), key=lambda e: e["task"])
            if not mine:
                tasks.append(cache_explain.task_entry(name, "not reached"))
            for entry in mine:
                outcome = "hit" if entry["hit"] else "miss" if self.cache else "off"
                tasks.append(
                    cache_explain.task_entry(
                        entry["task"],
                        outcome,
                        data_version=entry["data_version"],
                        parameters=entry["parameters"],
                        inputs=entry["inputs"],
                        code=entry["code"],
                        image=entry["image"],
                        outputs=entry["outputs"],
                        stored=entry["stored"],
                    )
                )
        return cache_explain.run_record(
            run_id=self.run_dir.name,
            pipeline=self.spec.pipeline_info.name,
            model=self.arguments["model_name"],
            started=self.started,
            code_version=str(self.arguments.get("code_version", "unknown")),
            cache=self.cache,
            tasks=tasks,
        )

    def publish(self) -> None:
        """Publish the record and its explanation in the store; a run that reached no cacheable task
        (it stopped at ingest, say) has nothing to explain and leaves none."""
        if not self.entries:
            return
        from mlops.store import open_store

        if self.failed:
            self._warn(f"some cache lookups were not recorded ({self.failed[0]})")
        try:
            store = open_store(self.arguments.get("store_uri") or None, role="pipeline")
            record = self.record()
            key = cache_explain.record_key(record["model"], self.started, record["run"])
            self.published = cache_explain.record_and_explain(store, key, record)
        except Exception as error:  # noqa: BLE001 - the run's own outcome stands
            self._warn(f"the run's cache record was not written: {' '.join(str(error).split())}")

    def explain_in_report(self, outputs) -> None:
        """Add the Cache section to the run's report: its file, and its copy in the store."""
        if self.published is None:
            return
        from mlops.reporting import report
        from mlops.store import open_store

        try:
            store = open_store(self.arguments.get("store_uri") or None, role="pipeline")
            path = Path(outputs["report"].path)
            page = report.with_cache_section(path.read_text(encoding="utf-8"), self.published)
            path.write_text(page, encoding="utf-8")
            key = report.report_key(self.arguments["model_name"], int(outputs["model_version"]))
            if store.exists(key):
                store.put(key, page.encode("utf-8"))
        except Exception as error:  # noqa: BLE001 - the run's own outcome stands
            self._warn(f"the report's Cache section was not added: {' '.join(str(error).split())}")

    def _warn(self, message: str) -> None:
        self.emit(f"warning: {message}")


class _RecordingCache(kfp_cache.LocalCache):
    """kfp.local's own cache, telling a :class:`Recording` what each lookup showed; with
    ``enabled=False`` it computes keys but looks nothing up and stores nothing."""

    def __init__(self, cache_root: str, recording: Recording, enabled: bool):
        if enabled:
            super().__init__(cache_root)
        else:
            self.cache_root, self._lock = cache_root, threading.Lock()
        self.recording, self.enabled = recording, enabled

    def compute_key(self, component_name, image, full_command, arguments, env_vars=None, custom_cache_key=None):
        key = super().compute_key(component_name, image, full_command, arguments, env_vars, custom_cache_key)
        self.recording.keyed(key, component_name, image, list(full_command), dict(arguments), dict(env_vars or {}))
        return key

    def get(self, key):
        outputs = super().get(key) if self.enabled else None
        self.recording.looked_up(key, outputs)
        return outputs

    def put(self, key, outputs):
        if self.enabled:
            super().put(key, outputs)
        self.recording.produced(key, outputs, stored=self.enabled)


def _uris(outputs: dict) -> list[str]:
    """The URIs of the artifacts among a task's outputs."""
    uris = []
    for value in outputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dsl.Artifact) and item.uri:
                uris.append(item.uri)
    return uris


def _tasks_in_order(spec) -> tuple[list[tuple[str, bool]], dict[str, str]]:
    """The pipeline's tasks in an order they can run (a loop's body in the loop's place), each with
    whether it may use the cache; and component name -> task name."""
    order: list[tuple[str, bool]] = []
    names: dict[str, str] = {}

    def walk(dag) -> None:
        waiting = {name: set(task.dependent_tasks) & set(dag.tasks) for name, task in dag.tasks.items()}
        done: set[str] = set()
        while waiting:
            ready = sorted(name for name, needs in waiting.items() if needs <= done) or sorted(waiting)[:1]
            for name in ready:
                task = dag.tasks[name]
                component = spec.components[task.component_ref.name]
                if component.WhichOneof("implementation") == "dag":
                    walk(component.dag)
                else:
                    order.append((name, bool(task.caching_options.enable_cache)))
                    names[task.component_ref.name] = name
                done.add(name)
                del waiting[name]

    walk(spec.root.dag)
    return order, names
