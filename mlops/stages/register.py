"""Register: store the model with its lineage and baseline; move `champion` only when
blessed, and only over the champion the blessing was decided against.

The lineage record is what `mlops models reproduce` needs to re-run the pipeline
(the data version, split, search space and chosen candidate, seed, code commit,
environment lock hashes, the KFP run) and what a person reads to trust a model.
The baseline (the training split's TFDV statistics, the schema the run was
validated against) travels with the version, for the drift monitor.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from mlops import config
from mlops.store import ObjectStore, model_io
from mlops.store.registry import AliasMoved, ModelRegistry, validate_name

LINEAGE_FORMAT = 2
# The environments a pipeline run executes in (tools.lock and dev.lock are for checks only).
RUNTIME_LOCKS = ("main.lock", "tfdv.lock")


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lock_hashes() -> dict[str, str]:
    """sha256 of each runtime environment's lock file, for the lineage record."""
    lock_dir = config.LOCK_DIR.get()
    return {name: sha256_file(lock_dir / name) for name in RUNTIME_LOCKS if (lock_dir / name).is_file()}


def package_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "skops": skops.__version__,
    }


def search_space_sha256(search_space: dict) -> str:
    return hashlib.sha256(json.dumps(search_space, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class Registration:
    """What register did: the version, whether it is now the champion, and why (not)."""

    name: str
    version: int
    ref: str
    promoted: bool
    previous_champion: int | None
    reason: str
    store: str

    def to_json(self) -> dict:
        return asdict(self)


def register_model(
    store: ObjectStore,
    model_name: str,
    model_bytes: bytes,
    lineage: dict,
    blessed: bool,
    compared_champion: int | None,
    baseline_files: dict[str, bytes] | None = None,
) -> Registration:
    """Publish a new version; when blessed, move `champion` to it by compare-and-swap.

    ``compared_champion`` is the champion the blessing was decided against (None:
    there was none). If another run or a person moved the alias since, the new
    version is registered but not promoted, and the reason says so.
    """
    validate_name("model", model_name)
    registry = ModelRegistry(store)
    same = registered_before(registry, model_name, lineage)
    if same is not None:
        # An unchanged re-run (its tasks served from KFP's cache): the same model from the same
        # data, parameters and code is that version, not a new one.
        if not blessed or config.CHAMPION_ALIAS in same.aliases:
            return Registration(
                model_name,
                same.version,
                same.ref,
                config.CHAMPION_ALIAS in same.aliases,
                compared_champion,
                f"unchanged: the same model as {same.ref}, registered before",
                store.uri,
            )
    metrics = {f"test_{k}": v for k, v in lineage["metrics"]["test"].items()}
    files = {
        model_io.FILE_NAME: model_bytes,
        "lineage.json": json.dumps(lineage, indent=2, sort_keys=True).encode("utf-8"),
        **{f"baseline/{name}": data for name, data in (baseline_files or {}).items()},
    }
    version = same or registry.register(
        model_name,
        files,
        metrics=metrics,
        lineage=lineage,
        tags={"blessed": str(blessed).lower(), "candidate": lineage["params"]["candidate"]["id"]},
    )
    if not blessed:
        return Registration(
            model_name,
            version.version,
            version.ref,
            False,
            compared_champion,
            "not blessed: the champion alias was not moved",
            store.uri,
        )
    try:
        previous = registry.set_alias(
            model_name,
            config.CHAMPION_ALIAS,
            version.version,
            expected=compared_champion,
            reason=lineage["blessing"]["reason"],
        )
    except AliasMoved as moved:
        shown = f"v{compared_champion}" if compared_champion is not None else "no champion"
        now = f"v{moved.current}" if moved.current is not None else "no champion"
        return Registration(
            model_name,
            version.version,
            version.ref,
            False,
            moved.current,
            f"blessed against {shown}, but the champion is now {now} (it moved while this run "
            f"was evaluating): registered without promoting; compare them and promote by hand "
            f"with `mlops models promote {version.ref}`",
            store.uri,
        )
    return Registration(
        model_name,
        version.version,
        version.ref,
        True,
        previous,
        "blessed: the champion alias now points to this version",
        store.uri,
    )


# What makes two registrations the same model version (lineage paths).
IDENTITY = (
    ("model", "sha256"),
    ("data", "ref"),
    ("params", "search_space_sha256"),
    ("seed",),
    ("split",),
    ("blessing", "min_skill"),
    ("blessing", "min_score"),
    ("code", "version"),
)


def _identity(lineage: dict) -> tuple:
    values = []
    for path in IDENTITY:
        value = lineage
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(json.dumps(value, sort_keys=True))
    return tuple(values)


def registered_before(registry, model_name: str, lineage: dict):
    """The version this exact model (same bytes, data, parameters, seed, split, gate and code) already is."""
    from mlops.store import NotFound

    if not lineage.get("model", {}).get("sha256"):
        return None
    try:
        versions = registry.versions(model_name)
    except NotFound:
        return None
    wanted = _identity(lineage)
    return next((v for v in reversed(versions) if v.lineage and _identity(v.lineage) == wanted), None)


def build_lineage(
    *,
    data: dict,
    split: dict,
    validation: dict,
    task: str,
    search_space: dict,
    candidate: dict,
    metric: str,
    validation_metrics: dict,
    blessing: dict,
    seed: int,
    code_version: str,
    run_id: str,
    run_name: str,
    model_sha256: str,
    features: dict | None = None,
    training_rows: dict | None = None,
) -> dict:
    """The lineage record of one model version (format LINEAGE_FORMAT).

    ``data``: ref, source, content_hash, rows (per split), columns (original ->
    cleaned), target, dropped_missing_target. ``validation``: schema_source,
    schema_origin, schema_sha256, tfdv_version. ``blessing``: the evaluate
    stage's decision (mlops.stages.evaluate.Blessing as JSON). ``features``: the kind decided for
    each feature column (mlops.stages.prepare.feature_decisions). ``training_rows``: the rows the model
    was fitted on (mlops.stages.train.TrainingRows as JSON: used, available, how chosen, the budget).
    """
    return {
        "format": LINEAGE_FORMAT,
        "data": data,
        "features": features or {},
        "split": split,
        "training": {"rows": training_rows or {}},
        "validation": validation,
        "task": task,
        "params": {
            "search_space": search_space,
            "search_space_sha256": search_space_sha256(search_space),
            "candidate": candidate,
            "metric": metric,
        },
        "metrics": {
            "validation": validation_metrics,
            "test": blessing["test_metrics"],
            "trivial_baseline": blessing["baseline_metrics"],
        },
        "blessing": {
            key: blessing[key]
            for key in (
                "blessed",
                "reason",
                "metric",
                "score",
                "baseline_score",
                "skill",
                "min_skill",
                "min_score",
                "champion_version",
                "champion_score",
                "champion_error",
            )
        },
        "seed": seed,
        "code": {"version": code_version},
        "environment": {"locks": lock_hashes(), "packages": package_versions()},
        "kfp": {"run_id": run_id, "run_name": run_name},
        "model": {"file": model_io.FILE_NAME, "format": model_io.FORMAT, "sha256": model_sha256},
    }


def baseline_files(model, train, test, target: str, schema: bytes, train_statistics: bytes) -> dict[str, bytes]:
    """What the drift monitor compares live data with, stored with the model version.

    The training split's TFDV statistics and the schema the run was validated
    against (TFDV's own views), and a profile (mlops.stages.drift): the training
    split's binned counts per column and the model's predictions on the test split.

    ``train``: a DataFrame, or mlops.stages.split.SplitColumns of its Parquet file (profiled a column
    at a time); ``test``: a DataFrame, or its Parquet file (predicted a record batch at a time, as the
    evaluate stage does). Every row counts either way: the profile is the same.
    """
    import numpy as np
    import pandas as pd

    from mlops.stages import drift
    from mlops.stages.metrics import split_batches

    profile = drift.profile_frame(train)
    profile["target"] = target
    predicted = [np.asarray(model.predict(batch.drop(columns=[target]))) for batch in split_batches(test)]
    predictions = predicted[0] if len(predicted) == 1 else np.concatenate(predicted)
    profile["predictions"] = drift.profile_series(pd.Series(predictions, name="prediction"))
    return {
        "schema.pbtxt": schema,
        "train_statistics.pb": train_statistics,
        "profile.json": json.dumps(profile, sort_keys=True).encode("utf-8"),
    }


def register_run(
    *,
    store: ObjectStore,
    model_name: str,
    model_path: str,
    candidate: dict,
    metric: str,
    validation_metrics: dict,
    blessing_path: str,
    blessed: bool,
    champion_version: int,
    train_path: str,
    test_path: str,
    split_facts: dict,
    schema_path: str,
    schema_facts: dict,
    statistics_dir: str,
    tfdv_version: str,
    task: str,
    data_version: str,
    data_source: str,
    columns: dict,
    search_space: dict,
    seed: int,
    code_version: str,
    run_id: str,
    run_name: str,
    training_rows: dict | None = None,
) -> Registration:
    """The register stage on its inputs as files, with the facts the earlier stages recorded on them.

    Reads the model and the evaluate stage's decision (``blessing_path``), assembles the
    lineage (:func:`build_lineage`) and the drift baseline (:func:`baseline_files`), then
    registers (:func:`register_model`), promoting over ``champion_version`` (0: none) when
    ``blessed``. ``split_facts``: the split stage's (target, rows_by_split, split_config,
    dropped_missing_target); ``schema_facts``: the validate stage's (source, origin, sha256);
    ``statistics_dir``: validate's output (statistics/train.pb). ``code_version`` "unknown"
    (not passed) is the commit the image was built from (MLOPS_GIT_COMMIT). ``training_rows``: the
    train stage's record of the rows the chosen candidate was fitted on.
    """
    from mlops.stages.prepare import feature_decisions
    from mlops.stages.split import SplitColumns

    if code_version == "unknown":
        code_version = config.CODE_VERSION.get()
    model_bytes = Path(model_path).read_bytes()
    model = model_io.loads(model_bytes, source=model_path)
    decision = json.loads(Path(blessing_path).read_text(encoding="utf-8"))
    target = split_facts["target"]
    lineage = build_lineage(
        data={
            "ref": data_version,
            "source": data_source,
            "content_hash": data_version.split("@", 1)[1],
            "rows": {name: int(rows) for name, rows in split_facts["rows_by_split"].items()},
            "columns": columns,
            "target": target,
            "dropped_missing_target": int(split_facts["dropped_missing_target"]),
        },
        split=split_facts["split_config"],
        validation={
            "schema_source": schema_facts["source"],
            "schema_origin": schema_facts["origin"],
            "schema_sha256": schema_facts["sha256"],
            "tfdv_version": tfdv_version,
        },
        task=task,
        search_space=search_space,
        candidate=candidate,
        metric=metric,
        validation_metrics=validation_metrics,
        blessing=decision,
        seed=seed,
        code_version=code_version,
        run_id=run_id,
        run_name=run_name,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        features=feature_decisions(model),
        training_rows=training_rows,
    )
    baseline = baseline_files(
        model=model,
        train=SplitColumns(train_path),
        test=test_path,
        target=target,
        schema=Path(schema_path).read_bytes(),
        train_statistics=(Path(statistics_dir) / "statistics" / "train.pb").read_bytes(),
    )
    return register_model(
        store=store,
        model_name=model_name,
        model_bytes=model_bytes,
        lineage=lineage,
        blessed=blessed,
        compared_champion=champion_version or None,
        baseline_files=baseline,
    )
