"""Re-run the pipeline from a model version's lineage record alone, and compare.

The re-run goes to a scratch store seeded with exactly the data version (and
baseline schema) the original used, so it cannot touch the real registry or
move an alias. It reproduces when the new model's serialised bytes hash to
the recorded sha256 and every validation and test metric is equal.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import MlopsError
from mlops.runners.local import run_pipeline
from mlops.stages.search_space import to_parameter
from mlops.store import ObjectStore
from mlops.store.datasets import DataVersions
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry, ModelVersion


class NotReproducible(MlopsError):
    """The lineage record lacks what a re-run needs."""


@dataclass
class Reproduction:
    original: ModelVersion
    model_sha256: str
    metrics: dict
    differences: list = field(default_factory=list)
    code_changed: bool = False

    @property
    def identical_model(self) -> bool:
        return self.model_sha256 == self.original.lineage["model"]["sha256"]

    @property
    def equal_metrics(self) -> bool:
        return not self.differences

    @property
    def reproduced(self) -> bool:
        return self.identical_model and self.equal_metrics


# What a re-run needs from the lineage record (dotted paths).
REQUIRED_LINEAGE = (
    "data.ref",
    "data.target",
    "task",
    "split.validation_fraction",
    "split.test_fraction",
    "split.salt",
    "params.search_space",
    "seed",
    "blessing.min_skill",
    "code.version",
    "model.sha256",
    "metrics.validation",
    "metrics.test",
)


def _lookup(record: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def arguments_from_lineage(version: ModelVersion, scratch_store_uri: str) -> dict:
    """The pipeline arguments that produced ``version``, from its lineage record."""
    lineage = version.lineage
    missing = [path for path in REQUIRED_LINEAGE if _lookup(lineage, path) is None]
    if missing:
        raise NotReproducible(f"the lineage of {version.ref} lacks {', '.join(missing)}: it cannot be re-run")
    data_ref = lineage["data"]["ref"]
    split, blessing = lineage["split"], lineage["blessing"]
    return {
        "data_uri": data_ref,
        "target": lineage["data"]["target"],
        "model_name": version.name,
        "store_uri": scratch_store_uri,
        "task": lineage["task"],
        "search_space": to_parameter(lineage["params"]["search_space"]),
        "seed": lineage["seed"],
        "validation_fraction": split["validation_fraction"],
        "test_fraction": split["test_fraction"],
        "split_salt": split["salt"],
        "min_skill": blessing["min_skill"],
        "min_score": "" if blessing.get("min_score") is None else repr(blessing["min_score"]),
        "code_version": lineage["code"]["version"],
        # A model trained on a sample is re-trained within the same budget (older records have none).
        **(
            {"train_memory_budget_mb": lineage["training"]["rows"]["memory_budget_mb"]}
            if lineage.get("training", {}).get("rows", {}).get("memory_budget_mb")
            else {}
        ),
    }


def seed_scratch_store(source: ObjectStore, scratch: ObjectStore, version: ModelVersion, scratch_dir: Path) -> str:
    """Copy the data version into the scratch store; return the schema file the re-run must use.

    The re-run is held to exactly the schema the original validated against (the
    version keeps it as baseline/schema.pbtxt), whatever the curated file or the
    stored baseline say today; "" when the version predates that.
    """
    source_data, scratch_data = DataVersions(source), DataVersions(scratch)
    data_version = source_data.resolve(version.lineage["data"]["ref"])
    scratch_data.copy_from(source_data, data_version)
    if "baseline/schema.pbtxt" not in version.files:
        return ""
    schema = scratch_dir / "schema.pbtxt"
    schema.write_bytes(ModelRegistry(source).read_file(version, "baseline/schema.pbtxt"))
    return str(schema)


def compare_metrics(original: dict, new: dict) -> list[str]:
    differences = []
    for split in ("validation", "test"):
        for name in sorted(set(original[split]) | set(new[split])):
            before, after = original[split].get(name), new[split].get(name)
            if before != after:
                differences.append(f"{split} {name}: {before} -> {after}")
    return differences


def reproduce(
    store: ObjectStore, ref: str, current_code_version: str, runs_dir: Path | None = None, emit=None
) -> Reproduction:
    """Re-run ``ref`` (``NAME@VERSION``) from its lineage and compare model bytes and metrics."""
    original = ModelRegistry(store).resolve(ref)
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as scratch_dir:
        scratch = FileStore(Path(scratch_dir) / "store")
        arguments = arguments_from_lineage(original, scratch.uri)
        arguments["schema_uri"] = seed_scratch_store(store, scratch, original, Path(scratch_dir))
        run = run_pipeline(arguments, runs_dir=runs_dir, emit=emit)
        lineage = ModelRegistry(scratch).get(original.name, run.model_version).lineage
    return Reproduction(
        original=original,
        model_sha256=lineage["model"]["sha256"],
        metrics=lineage["metrics"],
        differences=compare_metrics(original.lineage["metrics"], lineage["metrics"]),
        code_changed=current_code_version.removesuffix("-dirty")
        != original.lineage["code"]["version"].removesuffix("-dirty"),
    )
