"""The compiled KFP spec -> Argo WorkflowTemplate translation (mlops/cluster/argo.py), task by
task and edge by edge, and the launcher that runs a component inside an Argo pod
(mlops/runners/argo_task.py) against a real compiled component."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops import config
from mlops.cluster import argo
from mlops.runners import argo_task

COMPILED = config.COMPILED_DIR
PIPELINES = ("training_pipeline", "monitor_pipeline")


def load(name):
    spec, platform = yaml.safe_load_all((COMPILED / f"{name}.yaml").read_text())
    return spec, platform


def templates(workflow_template) -> dict:
    return {t["name"]: t for t in workflow_template["spec"]["templates"]}


@pytest.mark.parametrize("name", PIPELINES)
def test_committed_argo_template_is_fresh(name):
    committed = (COMPILED / f"{name}.argo.yaml").read_text()
    assert committed == argo.dump(argo.translate_file(COMPILED / f"{name}.yaml")), (
        "stale: run `mlops compile` and commit pipelines/compiled/"
    )


def _walk(spec, component, path):
    """(path, task) for every task of every DAG of the IR, as the translation names them."""
    for task_name, task in component["dag"]["tasks"].items():
        yield path + [task_name], task
        child = spec["components"][task["componentRef"]["name"]]
        if "dag" in child:
            yield from _walk(spec, child, path + [task_name])


@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_and_edge_is_carried(name):
    spec, platform = load(name)
    wt = argo.to_workflow_template(spec, platform, "p")
    by_name = templates(wt)
    seen = 0
    for path, task in _walk(spec, spec["root"], ["root"]):
        parent = by_name[argo.SEP.join(path[:-1])]
        argo_task_ = next(t for t in parent["dag"]["tasks"] if t["name"] == path[-1])
        seen += 1
        # dependencies are the IR's dependentTasks, exactly
        assert sorted(argo_task_.get("dependencies", [])) == sorted(task.get("dependentTasks", []))
        arguments = argo_task_.get("arguments", {})
        params = {p["name"]: p["value"] for p in arguments.get("parameters", [])}
        arts = {a["name"]: a for a in arguments.get("artifacts", [])}
        for pname, source in task.get("inputs", {}).get("parameters", {}).items():
            if "taskOutputParameter" in source:
                producer = source["taskOutputParameter"]
                assert params[pname] == "{{tasks.%s.outputs.parameters.%s}}" % (
                    producer["producerTask"],
                    producer["outputParameterKey"],
                )
            elif "componentInputParameter" in source:
                assert params[pname] == "{{inputs.parameters.%s}}" % source["componentInputParameter"]
            else:
                assert "{{$" not in params[pname]
        for aname, source in task.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in source:
                assert arts[aname]["from"] == "{{inputs.artifacts.%s}}" % source["componentInputArtifact"]
            else:
                producer = source["taskOutputArtifact"]
                producer_task = spec["root"] if len(path) == 2 else None
                if "from" in arts[aname]:
                    assert arts[aname]["from"] == "{{tasks.%s.outputs.artifacts.%s}}" % (
                        producer["producerTask"],
                        producer["outputArtifactKey"],
                    )
                else:  # dsl.Collected: the prefix of every iteration's upload
                    key = arts[aname]["s3"]["key"]
                    inner = by_name[argo.SEP.join(path[:-1] + [producer["producerTask"]]) + argo.SEP + "train"]
                    producer_key = inner["outputs"]["artifacts"][0]["s3"]["key"]
                    assert producer_key.startswith(key) and producer_key[len(key) :] == "{{pod.name}}/model"
                    del producer_task
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" not in component and "parameterIterator" not in task:
            template = by_name[argo_task_["template"]]
            executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
            command = template["container"]["command"]
            assert template["container"]["image"] == executor["image"]
            tail = command[command.index("--") + 1 :]
            assert tail == [
                argo.EXECUTOR_INPUT_TOKEN if a == "{{$}}" else a for a in executor["command"] + executor["args"]
            ]
            declared = component.get("outputDefinitions", {})
            outputs = {p["name"] for p in template["outputs"]["parameters"]}
            assert outputs == set(declared.get("parameters", {})) | {argo.PROGRESS_PARAMETER}
            assert {a["name"] for a in template["outputs"].get("artifacts", [])} == set(declared.get("artifacts", {}))
            assert (
                template["container"]["resources"]["limits"]["memory"] == executor["resources"]["resourceMemoryLimit"]
            )
    assert seen >= 10


def test_training_fan_out_keeps_the_parallelism_and_iterates_the_candidates():
    spec, platform = load("training_pipeline")
    by_name = templates(argo.to_workflow_template(spec, platform, "p"))
    loop_task = spec["root"]["dag"]["tasks"]["for-loop-1"]
    wrapper = by_name["root--for-loop-1--fan-out"]
    assert wrapper["parallelism"] == loop_task["iteratorPolicy"]["parallelismLimit"]
    iteration = wrapper["dag"]["tasks"][0]
    assert iteration["withParam"] == "{{inputs.parameters.pipelinechannel--expand-candidates-Output}}"
    item = {p["name"]: p["value"] for p in iteration["arguments"]["parameters"]}
    assert item[loop_task["parameterIterator"]["itemInput"]] == "{{item}}"
    root_task = next(t for t in by_name["root"]["dag"]["tasks"] if t["name"] == "for-loop-1")
    assert root_task["template"] == "root--for-loop-1--fan-out"


def test_monitor_if_branch_is_a_when_on_the_gate():
    spec, platform = load("monitor_pipeline")
    by_name = templates(argo.to_workflow_template(spec, platform, "p"))
    branch = next(t for t in by_name["root"]["dag"]["tasks"] if t["name"] == "condition-1")
    assert branch["when"] == "'{{tasks.retrain-gate.outputs.parameters.Output}}' == 'retrain'"
    # the nested training pipeline is a DAG template whose outputs the branch's next task reads
    nested = by_name["root--condition-1--training-pipeline"]
    assert {p["name"] for p in nested["outputs"]["parameters"]} == {"model_version", "promoted", "promotion"}


def test_platform_spec_roles_and_pod_security():
    spec, platform = load("training_pipeline")
    wt = argo.to_workflow_template(spec, platform, "p")
    by_name = templates(wt)
    assert wt["spec"]["serviceAccountName"] == config.ARGO_WORKFLOW_SERVICE_ACCOUNT
    assert wt["spec"]["securityContext"]["runAsNonRoot"] is True
    assert wt["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    secrets = {}
    for name, template in by_name.items():
        if "container" not in template:
            continue
        context = template["container"]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in template["container"].get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        secrets[name] = refs
    # each task gets only its own role's Secret: register the registry role, the rest the pipeline role
    assert secrets["root--register"] == {config.ROLE_SECRET_NAMES["registry"]}
    assert secrets["root--ingest"] == {config.ROLE_SECRET_NAMES["pipeline"], config.DATA_SOURCE_SECRET_NAME}
    assert secrets["exit-handler"] == {config.NOTIFY_SECRET_NAME}  # optional: the webhooks it tells
    # every run's artifacts are keyed by the Workflow's name and uid, and the pod
    for template in by_name.values():
        for artifact in template.get("outputs", {}).get("artifacts", []):
            if "s3" in artifact:
                assert artifact["s3"]["key"].startswith(argo.ARTIFACT_PREFIX + "/")
                assert artifact["s3"]["key"].endswith("/{{pod.name}}/" + artifact["name"])


def test_runtime_placeholders_become_workflow_variables():
    spec, platform = load("training_pipeline")
    text = json.dumps(argo.to_workflow_template(spec, platform, "p"))
    assert "{{$." not in text and "{{workflow.uid}}" in text and "{{workflow.name}}" in text


def _spec_with(mutate):
    spec, platform = load("training_pipeline")
    spec, platform = copy.deepcopy(spec), copy.deepcopy(platform)
    mutate(spec, platform)
    return spec, platform


@pytest.mark.parametrize(
    "mutate, named",
    [
        (lambda s, p: s["root"]["dag"]["tasks"]["ingest"].update(singleStepFeature={}), "singleStepFeature"),
        (
            lambda s, p: p["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"].update(
                nodeSelector={"labels": {"a": "b"}}
            ),
            "nodeSelector",
        ),
        (
            lambda s, p: s["deploymentSpec"]["executors"]["exec-ingest"]["container"]["args"].append(
                "{{$.inputs.parameters['x']}}"
            ),
            "{{$.inputs.parameters['x']}}",
        ),
        (
            lambda s, p: s["root"]["dag"]["tasks"]["for-loop-1"].update(
                triggerPolicy={"condition": "inputs.parameter_values['a'] > 3"}
            ),
            "condition",
        ),
        (
            lambda s, p: (
                s["deploymentSpec"]["executors"]["exec-ingest"].update(importer={})
                or s["deploymentSpec"]["executors"]["exec-ingest"].pop("container")
            ),
            "exec-ingest",
        ),
    ],
)
def test_an_unsupported_feature_fails_with_one_line_naming_it(mutate, named):
    spec, platform = _spec_with(mutate)
    with pytest.raises(argo.TranslationError) as raised:
        argo.to_workflow_template(spec, platform, "p")
    message = str(raised.value)
    assert "\n" not in message and named in message and "not supported" in message


def test_retry_policy_becomes_a_retry_strategy():
    def add_retry(spec, platform):
        spec["root"]["dag"]["tasks"]["ingest"]["retryPolicy"] = {
            "maxRetryCount": 3,
            "backoffDuration": "5s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "60s",
        }

    spec, platform = _spec_with(add_retry)
    ingest = templates(argo.to_workflow_template(spec, platform, "p"))["root--ingest"]
    assert ingest["retryStrategy"] == {
        "limit": 3,
        "retryPolicy": "Always",
        "backoff": {"duration": "5s", "factor": 2.0, "maxDuration": "60s"},
    }


def test_cache_is_not_silently_dropped():
    spec, platform = load("training_pipeline")
    wt = argo.to_workflow_template(spec, platform, "p")
    assert "cachingOptions" in wt["metadata"]["annotations"][argo.ANNOTATION_NOTES]


# -- the launcher, inside a pod --------------------------------------------------------


@pytest.fixture
def pod_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(argo_task, "INPUTS_DIR", tmp_path / "in")
    monkeypatch.setattr(argo_task, "WORK_DIR", tmp_path / "work")
    monkeypatch.setattr(argo_task, "OUTPUT_PARAMETERS_DIR", tmp_path / "work" / "out" / "parameters")
    monkeypatch.setattr(argo_task, "OUTPUT_ARTIFACTS_DIR", tmp_path / "work" / "out" / "artifacts")
    monkeypatch.setattr(argo_task, "TERMINATION_LOG", tmp_path / "termination-log")
    monkeypatch.delenv("MLOPS_TASK_SERVER", raising=False)
    # the component's command calls `python3`: this interpreter, as the image's PATH would give it
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return tmp_path


def _container_command(name, template):
    wt = argo.translate_file(COMPILED / "training_pipeline.yaml")
    command = templates(wt)[template]["container"]["command"]
    plan = json.loads(command[command.index("--plan") + 1])
    tail = command[command.index("--") + 1 :]
    return plan, tail


def test_launcher_runs_the_real_compiled_component_and_hands_its_outputs_to_argo(pod_dirs):
    plan, command = _container_command("training_pipeline", "root--expand-candidates")
    search_space = {"candidates": {"classification": {"logistic_regression": {"C": [0.1, 1.0]}}}}
    values = {"search_space": json.dumps(search_space), "seed": "7", "task": "classification"}
    assert argo_task.run_task(plan, values, command) == 0
    candidates = json.loads((argo_task.OUTPUT_PARAMETERS_DIR / "Output").read_text())
    assert [c["params"]["C"] for c in candidates] == [0.1, 1.0]
    progress = json.loads((argo_task.OUTPUT_PARAMETERS_DIR / argo.PROGRESS_PARAMETER).read_text())
    assert progress and progress[0].startswith("[")


def test_launcher_puts_the_one_line_reason_in_the_termination_message(pod_dirs):
    plan, command = _container_command("training_pipeline", "root--expand-candidates")
    values = {
        "search_space": json.dumps({"candidates": {"classification": {"no_such_model": {}}}}),
        "seed": "7",
        "task": "classification",
    }
    assert argo_task.run_task(plan, values, command) == 1
    reason = argo_task.TERMINATION_LOG.read_text()
    assert "no_such_model" in reason and "\n" not in reason and "Traceback" not in reason
    assert not (argo_task.OUTPUT_PARAMETERS_DIR / "Output").exists()


def test_collected_artifacts_are_read_in_a_stable_order_and_incomplete_ones_skipped(pod_dirs):
    base = argo_task.INPUTS_DIR / "candidates"
    for pod, score in (("pod-b", 2), ("pod-a", 1), ("pod-c", 3)):
        directory = base / pod / "model"
        directory.mkdir(parents=True)
        (directory / "data").write_text(pod)
        if pod != "pod-c":  # a failed attempt: bytes, no metadata
            (directory / "metadata.json").write_text(
                json.dumps({"type": {"schemaTitle": "system.Model"}, "metadata": {"score": score}})
            )
    entries = argo_task.collected_artifacts(base)
    assert [e["metadata"]["score"] for e in entries] == [1, 2]
    assert all(e["uri"].endswith("/model/data") for e in entries)


@pytest.mark.parametrize(
    "failures, expected",
    [
        ("", None),
        (json.dumps(json.dumps([])), None),
        # a task failed and passed on its retry: the pipeline task itself did not fail
        (
            json.dumps(
                json.dumps(
                    [
                        {
                            "displayName": "ingest(0)",
                            "message": "main: Error (exit code 1): ingest: flaky",
                            "finishedAt": "2026-01-01T00:00:01Z",
                        }
                    ]
                )
            ),
            None,
        ),
        (
            json.dumps(
                json.dumps(
                    [
                        {"displayName": "pipeline", "message": "", "finishedAt": "2026-01-01T00:00:09Z"},
                        {
                            "displayName": "report",
                            "message": "main: Error (exit code 1): report: later",
                            "finishedAt": "2026-01-01T00:00:05Z",
                        },
                        {
                            "displayName": "split",
                            "message": "main: Error (exit code 1): split: target 'nope' is not a column",
                            "finishedAt": "2026-01-01T00:00:02Z",
                        },
                    ]
                )
            ),
            "split: target 'nope' is not a column",
        ),
    ],
)
def test_exit_handler_reason(failures, expected):
    assert argo_task.failure_reason(failures, "pipeline") == expected


def test_exit_handler_exit_status():
    failing = json.dumps(
        json.dumps(
            [
                {"displayName": "pipeline", "message": ""},
                {"displayName": "x", "message": "main: Error (exit code 1): x: bad"},
            ]
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "mlops.runners.argo_task", "exit", "--pipeline-task", "pipeline", "--failures", failing],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stderr.strip() == "x: bad"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops.runners.argo_task",
            "exit",
            "--pipeline-task",
            "pipeline",
            "--failures",
            json.dumps("[]"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0


def test_mlops_compile_fails_in_one_line_when_the_translation_cannot_carry_a_feature(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mlops.cli.main import main

    def refuse(path, name=None):
        raise argo.TranslationError("Argo translation: root--ingest: the task field singleStepFeature is not supported")

    monkeypatch.setattr(argo, "translate_file", refuse)
    result = CliRunner().invoke(main, ["compile", "--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: Argo translation: root--ingest: the task field singleStepFeature is not supported"
    ]
    assert result.exception is None or isinstance(result.exception, SystemExit)
