"""Register: store the model with its lineage; move `champion` only when blessed.

The lineage record is what `mlops models reproduce` needs to re-run the
pipeline: the data (URI and content hash), split, search space and chosen
candidate, seed, code commit, environment lock hashes and the KFP run.
"""

import hashlib
import json
import platform

from kfp.dsl import Input, Model

from components.runtime import lock_hashes
from components.storage import ObjectStore
from components.storage.registry import ModelRegistry, validate_name

LINEAGE_FORMAT = 1


def package_versions() -> dict[str, str]:
    import kfp
    import numpy
    import pandas
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "pandas": pandas.__version__, "numpy": numpy.__version__, "kfp": kfp.__version__}


def build_lineage(*, data_uri: str, ingest_summary: dict, validation: dict, prepare_info: dict,
                  selection: dict, evaluation: dict, search_space: dict, seed: int, code_version: str,
                  run_id: str, run_name: str, model_sha256: str) -> dict:
    best = next(c for c in selection["candidates"] if c["candidate"]["id"] == selection["best"])
    data_version = ingest_summary.get("data_version")
    return {
        "format": LINEAGE_FORMAT,
        "data": {"uri": data_uri, "content_hash": ingest_summary["content_hash"],
                 "ref": f"{data_version['name']}@{data_version['id']}" if data_version else None,
                 "rows": ingest_summary["rows"], "columns": ingest_summary["columns"],
                 "target": ingest_summary["target"]},
        "split": ingest_summary["split"],
        "validation": {"schema_source": validation["schema_source"], "tfdv_version": validation["tfdv_version"]},
        "task": prepare_info["task"],
        "params": {"search_space": search_space,
                   "search_space_sha256": hashlib.sha256(
                       json.dumps(search_space, sort_keys=True).encode("utf-8")).hexdigest(),
                   "candidate": best["candidate"], "metric": selection["metric"]},
        "metrics": {"validation": best["validation_metrics"], "test": evaluation["test_metrics"]},
        "blessing": {"blessed": evaluation["blessed"], "reason": evaluation["reason"],
                     "min_score": evaluation["min_score"], "champion": evaluation["champion"]},
        "seed": seed,
        "code": {"version": code_version},
        "environment": {"locks": lock_hashes(), "packages": package_versions()},
        "kfp": {"run_id": run_id, "run_name": run_name},
        "model": {"file": "model.joblib", "sha256": model_sha256},
    }


def register_model(store: ObjectStore, model_name: str, model_bytes: bytes, lineage: dict,
                   blessed: bool) -> dict:
    """Publish a new version; alias it `champion` when blessed. Returns what happened."""
    validate_name("model", model_name)
    registry = ModelRegistry(store)
    metrics = {f"test_{k}": v for k, v in lineage["metrics"]["test"].items()}
    version = registry.register(
        model_name,
        {"model.joblib": model_bytes, "lineage.json": json.dumps(lineage, indent=2, sort_keys=True).encode()},
        metrics=metrics, lineage=lineage,
        tags={"blessed": str(blessed).lower(), "candidate": lineage["params"]["candidate"]["id"]},
    )
    previous = registry.set_alias(model_name, "champion", version.version) if blessed else None
    return {"name": model_name, "version": version.version, "ref": version.ref, "champion": blessed,
            "previous_champion": previous, "store": store.uri}


def register(
    best: Input[Model],
    model_name: str,
    store_uri: str,
    data_uri: str,
    ingest_summary: str,
    validation_summary: str,
    prepare_info: str,
    selection: str,
    evaluation: str,
    search_space: str,
    seed: int,
    code_version: str,
    run_id: str,
    run_name: str,
) -> str:
    """KFP component: register the model version and its lineage; returns the registration as JSON."""
    import hashlib
    import json
    import os

    from components import register as stage
    from components import runtime
    from components.storage import open_store

    if code_version == "unknown":  # not passed: the commit the image was built from
        code_version = os.environ.get("MLOPS_CODE_VERSION", code_version)
    with open(os.path.join(best.path, "model.joblib"), "rb") as handle:
        model_bytes = handle.read()
    evaluation_result = runtime.parse_json(evaluation)
    lineage = stage.build_lineage(
        data_uri=data_uri, ingest_summary=runtime.parse_json(ingest_summary), validation=runtime.parse_json(validation_summary),
        prepare_info=runtime.parse_json(prepare_info), selection=runtime.parse_json(selection), evaluation=evaluation_result,
        search_space=runtime.parse_json(search_space), seed=seed, code_version=code_version, run_id=run_id,
        run_name=run_name, model_sha256=hashlib.sha256(model_bytes).hexdigest())
    result = runtime.run_stage("register", stage.register_model, store=open_store(store_uri),
                               model_name=model_name, model_bytes=model_bytes, lineage=lineage,
                               blessed=evaluation_result["blessed"])
    moved = "champion -> this version" if result["champion"] else "champion unchanged"
    runtime.report_progress("register", f"{result['ref']} in {result['store']} ({moved})")
    return json.dumps({**result, "lineage": lineage})
