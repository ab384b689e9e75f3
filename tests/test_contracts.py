"""The contracts between stages: layering, typed wiring, the two races, and one-line failures
as a pod would show them."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops import config
from mlops.stages.register import register_model
from mlops.store import model_io
from mlops.store.datasets import DataVersions
from mlops.store.registry import ModelRegistry
from pipelines.compile import COMPILED_DIR, CONTRACT_DOC, with_contract_table

PYTHON = sys.executable

# The stage logic and everything it builds on: importable, and testable, without KFP.
PLAIN_MODULES = (
    "mlops.stages.ingest",
    "mlops.stages.split",
    "mlops.stages.validate",
    "mlops.stages.prepare",
    "mlops.stages.train",
    "mlops.stages.evaluate",
    "mlops.stages.register",
    "mlops.reporting.report",
    "mlops.stages.metrics",
    "mlops.data.content",
    "mlops.store.model_io",
    "mlops.config",
    "mlops.errors",
    "components.adapter",
    "mlops.data.uris",
    "mlops.data.http_source",
    "mlops.store.fs",
    "mlops.store.s3",
    "mlops.store.datasets",
    "mlops.store.registry",
    "mlops.stages.search_space",
    "mlops.data.pointer",
)


def imported_after(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    return set(subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_the_stage_logic_imports_no_kfp():
    loaded = imported_after(*PLAIN_MODULES)
    assert not {m for m in loaded if m == "kfp" or m.startswith("kfp.")}


def test_the_split_settings_the_cli_process_reads_import_no_numpy_pandas_or_arrow():
    """`mlops run` waits through the run holding SplitConfig and dataset_name: it stays small."""
    loaded = imported_after("mlops.stages.split")
    assert not loaded & {"numpy", "pandas", "pyarrow"}


def test_the_pipeline_definition_imports_no_client_code():
    loaded = imported_after("pipelines.training")
    assert not loaded & {"mlops.cluster.kfp_client", "mlops.cluster.schedules", "mlops.cli.submit"}


def test_values_between_stages_are_typed_outputs_not_json_strings():
    """Every later stage is wired to an upstream output (or a pipeline parameter nobody changes),
    and prepare's target is the cleaned name split produced, not the raw parameter."""
    spec = next(yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    prepare_target = tasks["prepare"]["inputs"]["parameters"]["target"]
    assert prepare_target["taskOutputParameter"] == {"producerTask": "split", "outputParameterKey": "target"}
    # prepare reads the schema validate held the data to (its kind tags), not a file of its own; as
    # values (its digest and kind tags), not validate's artifact, which is new on every run (validate
    # never caches) and would make prepare and every training task after it run every time
    assert "schema" not in tasks["prepare"]["inputs"].get("artifacts", {})
    for value in ("schema_sha256", "schema_kinds"):
        wired = tasks["prepare"]["inputs"]["parameters"][value]["taskOutputParameter"]
        assert wired == {"producerTask": "validate", "outputParameterKey": value}
    assert tasks["validate"]["cachingOptions"].get("enableCache") is not True
    # the size-aware search space is trimmed by the training split's size that prepare measured
    for size in ("train_rows", "model_inputs"):
        wired = tasks["expand-candidates"]["inputs"]["parameters"][size]["taskOutputParameter"]
        assert wired == {"producerTask": "prepare", "outputParameterKey": size}
    evaluate_inputs = tasks["evaluate"]["inputs"]["parameters"]
    assert evaluate_inputs["metric"]["taskOutputParameter"]["producerTask"] == "prepare"
    register_inputs = tasks["register"]["inputs"]["parameters"]
    assert register_inputs["champion_version"]["taskOutputParameter"] == {
        "producerTask": "evaluate",
        "outputParameterKey": "champion_version",
    }
    types = {
        name: component["outputDefinitions"]["artifacts"]
        for name, component in spec["components"].items()
        if "outputDefinitions" in component and "artifacts" in component["outputDefinitions"]
    }
    validate_outputs = {key: value["artifactType"]["schemaTitle"] for key, value in types["comp-validate"].items()}
    assert validate_outputs == {
        "statistics": "mlops.Statistics",
        "schema": "mlops.Schema",
        "anomalies": "mlops.Anomalies",
        "statistics_view": "system.HTML",
    }
    assert types["comp-evaluate"]["blessing"]["artifactType"]["schemaTitle"] == "mlops.Blessing"
    # No stage result travels as a JSON string any more.
    for component in spec["components"].values():
        outputs = component.get("outputDefinitions", {}).get("parameters", {})
        assert "Output" not in outputs or outputs["Output"]["parameterType"] == "LIST"


def test_only_our_own_artifact_namespace_is_allowed_next_to_kfps():
    from kfp.dsl.types import type_utils

    import components.artifact_types  # noqa: F401 - lifts the check for mlops.*

    type_utils.validate_schema_title("mlops.Schema")
    type_utils.validate_schema_title("system.Dataset")
    with pytest.raises(TypeError, match="must belong to `system` or `google` namespace"):
        type_utils.validate_schema_title("acme.Schema")


def test_the_stage_contract_table_is_generated_from_the_components():
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    assert with_contract_table(text) == text, "the stage contract table of docs/architecture.md is stale: make compile"


# -- The champion moves only over the champion that was compared against ---------------------


def _lineage(reason="blessed"):
    return {
        "metrics": {"test": {"f1_macro": 0.9}},
        "params": {"candidate": {"id": "c01"}},
        "blessing": {"reason": reason},
    }


def _register(store, compared, blessed=True):
    return register_model(store, "race", b"model-bytes", _lineage(), blessed=blessed, compared_champion=compared)


def test_a_run_promotes_over_the_champion_it_was_compared_with(store):
    first = _register(store, compared=None)
    assert first.promoted and first.version == 1
    second = _register(store, compared=1)
    assert second.promoted and second.previous_champion == 1
    assert ModelRegistry(store).champion("race").version == 2


def test_the_champion_race_is_lost_safely(store):
    """Run A evaluates against v1; meanwhile run B (or `models promote`) moves the champion to v2.
    A registers v3 but must not undo B: the champion stays v2 and A says why."""
    registry = ModelRegistry(store)
    assert _register(store, compared=None).promoted  # v1 is the champion run A compares against
    compared_by_a = registry.champion("race").version
    assert _register(store, compared=1).promoted  # run B finishes first: champion v2
    late = _register(store, compared=compared_by_a)  # run A registers
    assert (late.version, late.promoted, late.previous_champion) == (3, False, 2)
    assert "blessed against v1, but the champion is now v2" in late.reason
    assert "mlops models promote race@3" in late.reason
    assert registry.champion("race").version == 2
    assert [move["version"] for move in registry.alias_history("race", "champion")] == [1, 2]


def test_a_first_champion_race_is_lost_safely(store):
    """Two first runs: both saw no champion; only the first to promote wins."""
    registry = ModelRegistry(store)
    registry.register("race", {"model.skops": b"x"}, metrics={}, lineage={})
    registry.set_alias("race", "champion", 1)  # someone promoted by hand meanwhile
    late = _register(store, compared=None)
    assert not late.promoted and "blessed against no champion, but the champion is now v1" in late.reason


# -- Data versions under concurrent publishes ----------------------------------------------


class PausingStore:
    """Delegates to a store; calls ``before_manifest`` once, just before the first manifest create."""

    def __init__(self, store, before_manifest):
        self._store, self._hook = store, before_manifest

    def __getattr__(self, name):
        return getattr(self._store, name)

    def create(self, key, data):
        if key.endswith("/manifest.json") and self._hook:
            hook, self._hook = self._hook, None
            hook()
        return self._store.create(key, data)


def test_concurrent_publishes_of_the_same_data_agree_with_their_bytes(store, wine_frame):
    """Publisher A writes its rows, then B (same content, other bytes: ints stored as floats)
    publishes completely, then A tries its manifest: A must end on B's version, and the stored
    bytes must match the manifest for every later read."""
    as_floats = wine_frame.astype({"proline": "float64", "magnesium": "float64"})
    winner = {}

    def b_publishes_first():
        winner["version"], winner["new"] = DataVersions(store).publish("race", as_floats, source="b")

    a_version, a_new = DataVersions(PausingStore(store, b_publishes_first)).publish("race", wine_frame, source="a")
    assert winner["new"] and not a_new
    assert a_version == winner["version"]  # A verified B's version instead of overwriting it
    versions = DataVersions(store)
    stored = versions.resolve(f"race@{a_version.id}")
    pd.testing.assert_frame_equal(versions.read_frame(stored), versions.read_frame(winner["version"]))
    assert stored.source == "b"


def test_many_concurrent_publishers_end_with_one_readable_version(store, wine_frame):
    frames = [wine_frame, wine_frame.astype({"proline": "float64"}), wine_frame.sample(frac=1.0, random_state=1)]
    results, errors = [], []

    def publish(frame):
        try:
            results.append(DataVersions(store).publish("many", frame, source="x")[0])
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(frames[i % 3],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({(v.id, v.data_sha256) for v in results}) == 1
    assert len(DataVersions(store).read_frame(results[0])) == len(wine_frame)


# -- A stage failure, as a pod shows it ------------------------------------------------------


def _executor_command(function: str) -> list[str]:
    spec = next(yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text()))
    container = spec["deploymentSpec"]["executors"][f"exec-{function}"]["container"]
    return container["command"], container["args"]


def _run_like_a_pod(tmp_path, function: str, parameters: dict, outputs: dict) -> subprocess.CompletedProcess:
    """The task's container command from the compiled spec, with an executor input as KFP's launcher writes."""
    command, args = _executor_command(function)
    executor_input = {
        "inputs": {"parameterValues": parameters},
        "outputs": {
            "parameters": {name: {"outputFile": str(tmp_path / name)} for name in outputs},
            "outputFile": str(tmp_path / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if arg == "{{$}}" else arg for arg in args]
    env = {"PATH": f"{Path(PYTHON).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_a_stage_failure_is_the_last_line_a_pod_log_shows(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    parameters = {
        "data_uri": str(empty),
        "data_name": "",
        "model_name": "m",
        "search_space": json.dumps({"candidates": {"classification": {"knn": {}}}}),
        "validation_fraction": 0.15,
        "test_fraction": 0.15,
        "min_score": "",
        "store_uri": (tmp_path / "store").as_uri(),
    }
    result = _run_like_a_pod(tmp_path, "ingest", parameters, ["data_version", "source", "columns"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "[ingest] ERROR: empty.csv is empty"
    assert "Traceback" not in result.stderr


def test_the_run_parameters_are_checked_by_the_first_task_too(tmp_path):
    """A cluster run has no CLI pre-flight: the first task gives the same message."""
    parameters = {
        "data_uri": "x.csv",
        "data_name": "",
        "model_name": "m",
        "search_space": json.dumps({"candidates": {"classification": {"random_forest": {"n_estimator": [10]}}}}),
        "validation_fraction": 0.15,
        "test_fraction": 0.15,
        "min_score": "",
        "store_uri": (tmp_path / "store").as_uri(),
    }
    result = _run_like_a_pod(tmp_path, "ingest", parameters, ["data_version", "source", "columns"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "[ingest] ERROR: unknown hyperparameter 'n_estimator' for random_forest (classification) "
        "(did you mean 'n_estimators'?)"
    )


def test_a_bug_in_a_stage_still_ends_with_one_line(tmp_path, capsys):
    from components import adapter as kfp_adapter

    def broken():
        return {}["missing"]

    with pytest.raises(SystemExit), kfp_adapter.stage("train"):
        broken()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("[train] ERROR: internal error: KeyError: 'missing' (a bug; the traceback is above)")


def test_models_are_stored_in_a_format_loaded_without_unpickling(tmp_path):
    import pickle

    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    assert model_io.loads(model_io.dumps(model)).predict([[1.0]]) == [1]
    with pytest.raises(model_io.UnsafeModel, match="is not a readable skops model file"):
        model_io.loads(pickle.dumps(model), source="model.joblib")


def test_the_store_setting_types_are_checked(monkeypatch):
    monkeypatch.setenv("MLOPS_STORE_RETRIES", "many")
    with pytest.raises(Exception, match="MLOPS_STORE_RETRIES must be an integer, got 'many'"):
        config.STORE_RETRIES.get()
