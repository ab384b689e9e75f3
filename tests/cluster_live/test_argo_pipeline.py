"""The whole pipeline on the kind cluster: Argo Workflows (built here) runs the WorkflowTemplate that
`mlops compile` generated from the compiled KFP spec, with the in-cluster MinIO as its artifact
repository and the pipeline's store.

`make test-cluster` runs `make deploy-argo` first (scripts/kind/test-cluster.sh). Every case uses
the interfaces a user has: `mlops data push` through the NodePort, `mlops submit --engine argo
--wait`, `kubectl create -f manifests/runs/argo-run.yaml`, `mlops schedules sync --engine argo`,
`mlops runs`, and the registry read back from the host with the reader role.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from live_cluster import CONTEXT, REPO

pytestmark = pytest.mark.cluster

NAMESPACE = "mlops-runs"
OVERLAY = REPO / "manifests" / "overlays" / "kind"
MLOPS = str(Path(sys.executable).with_name("mlops"))
STORE = "s3://mlops/store"
MODEL = "demo-wine"
RUN_TIMEOUT = 1500
# a run whose target is not a column of the data
BAD_SUBMIT = (
    "submit",
    "--engine",
    "argo",
    "--context",
    CONTEXT,
    "--param",
    "data_uri=demo-wine@latest",
    "--param",
    "target=no_such_column",
    "--param",
    "model_name=demo-wine-bad",
)


def role_env(role: str) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (OVERLAY / f"role-{role}.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    creds = {k.strip(): v.strip() for k, v in pairs}
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": creds["accesskey"],
        "AWS_SECRET_ACCESS_KEY": creds["secretkey"],
        "MLOPS_STORE": STORE,
    }


def mlops(*args: str, role: str = "reader", timeout: float = RUN_TIMEOUT, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, timeout=timeout, env=role_env(role), cwd=cwd)


def workflow(kube, name: str) -> dict:
    return kube.json("-n", NAMESPACE, "get", "workflow", name)


def wait_finished(kube, name: str, timeout: float = RUN_TIMEOUT) -> dict:
    return kube.wait_for(
        f"workflow {name} to finish",
        timeout,
        lambda: (w := workflow(kube, name)).get("status", {}).get("phase") in ("Succeeded", "Failed", "Error") and w,
        interval=5,
    )


def pods_of(workflow_: dict) -> list[dict]:
    return [n for n in workflow_["status"]["nodes"].values() if n.get("type") == "Pod"]


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def argo(kube):
    """Argo's controller answers in its namespace and the WorkflowTemplates are applied."""
    kube.run("-n", "argo", "rollout", "status", "deployment/workflow-controller", "--timeout=300s", timeout=320)
    for name in ("training_pipeline", "monitor_pipeline"):
        kube.run(
            "-n",
            NAMESPACE,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "pipelines" / "compiled" / f"{name}.argo.yaml"),
        )
    return kube


@pytest.fixture(scope="module")
def data(argo, tmp_path_factory):
    """The demo data as a data version, and two live batches (a clean resample, a shifted one)."""
    work = tmp_path_factory.mktemp("argo-data")
    subprocess.run([sys.executable, "-m", "mlops.data.demo", str(work)], check=True, timeout=300)
    wine = pd.read_csv(work / "demo-wine.csv")
    wine.sample(600, replace=True, random_state=1).to_csv(work / "demo-wine-clean.csv", index=False)
    column = wine.select_dtypes("number").columns[0]
    shifted = wine.sample(600, replace=True, random_state=2)
    shifted[column] = shifted[column] + 1.5 * wine[column].std()
    shifted.to_csv(work / "demo-wine-shifted.csv", index=False)
    for name in ("demo-wine", "demo-wine-clean", "demo-wine-shifted"):
        pushed = mlops(
            "data", "push", str(work / f"{name}.csv"), "--name", name, "--store", STORE, role="pipeline", timeout=300
        )
        assert pushed.returncode == 0, pushed.stderr
    return work


@pytest.fixture(scope="module")
def bad_run(data):
    """A run with a bad input, started early (it fails fast) and checked later."""
    started = mlops(
        *BAD_SUBMIT,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    return started.stdout.split()[1]


@pytest.fixture(scope="module")
def trained(data, bad_run):
    """The demo training pipeline, submitted and followed as a user would."""
    started = time.monotonic()
    result = mlops(
        "submit",
        "--engine",
        "argo",
        "--context",
        CONTEXT,
        "--param",
        "data_uri=demo-wine@latest",
        "--param",
        "target=target",
        "--param",
        f"model_name={MODEL}",
        "--store",
        STORE,
        "--wait",
    )
    result.elapsed = time.monotonic() - started
    print(f"training run: {result.elapsed:.0f} s\n{result.stdout}")
    return result


def test_training_pipeline_runs_as_one_workflow(argo, trained):
    assert trained.returncode == 0, trained.stdout + trained.stderr
    name = trained.stdout.split()[1]
    run = workflow(argo, name)
    assert run["status"]["phase"] == "Succeeded"
    tasks = {n["templateName"].split("--")[-1] for n in pods_of(run)}
    assert {
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
    } <= tasks
    # each stage's progress line, then mlops run's summary
    for stage in ("[ingest]", "[split]", "[validate]", "[train]", "[evaluate]", "[register]"):
        assert stage in trained.stdout
    for line in ("data:    demo-wine@", "model:   demo-wine@", "blessed: yes", "report:  s3://mlops/store/reports/"):
        assert line in trained.stdout


def test_candidates_train_in_parallel_pods(argo, trained):
    run = workflow(argo, trained.stdout.split()[1])
    trains = [n for n in pods_of(run) if n["templateName"].endswith("--train")]
    assert len(trains) >= 3, "the default search space has several candidates"
    intervals = sorted((when(n["startedAt"]), when(n["finishedAt"])) for n in trains)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(intervals, intervals[1:])), intervals


def test_model_is_registered_and_read_back_from_the_host(trained):
    from mlops.store import StoreError, open_store
    from mlops.store.registry import ModelRegistry

    env = role_env("reader")
    previous = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({k: env[k] for k in previous})
    try:
        store = open_store(STORE, role="reader")
        registry = ModelRegistry(store)
        champion = registry.champion(MODEL)
        assert champion is not None and champion.lineage["blessing"]["blessed"]
        assert store.exists(f"reports/{MODEL}/v{champion.version:06d}.html")
        # the reader role reads, and may not write
        with pytest.raises(StoreError, match="AccessDenied"):
            store.put("reports/forbidden.txt", b"x")
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_artifacts_went_through_minio_with_the_artifacts_role(argo, trained):
    from minio import Minio

    env = role_env("artifacts")
    client = Minio(
        "127.0.0.1:9000", access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"], secure=False
    )
    run = workflow(argo, trained.stdout.split()[1])
    prefix = f"argo-runs/{run['metadata']['name']}-{run['metadata']['uid']}/"
    keys = [o.object_name for o in client.list_objects("mlpipeline", prefix=prefix, recursive=True)]
    assert any("/root--split/" in k and k.endswith("/train/data") for k in keys), keys[:20]
    assert sum(k.endswith("/model/metadata.json") for k in keys) >= 3  # every candidate, for the fan-in


def test_bad_input_fails_the_workflow_with_its_one_line_reason(argo, bad_run):
    run = wait_finished(argo, bad_run, timeout=900)
    assert run["status"]["phase"] == "Failed"
    message = run["status"].get("message", "")
    assert "no_such_column" in message and "\n" not in message
    waited = mlops(
        *BAD_SUBMIT,
        "--wait",
        timeout=300,
    )
    assert waited.returncode == 1
    assert "exists (same key, not created again)" in waited.stdout  # idempotent by key
    reason = waited.stderr.strip().splitlines()[-1]
    assert "no_such_column" in reason and "Traceback" not in waited.stderr
    assert reason.removeprefix("Error: ") in message


@pytest.fixture(scope="module")
def kubectl_run(argo, trained):
    """A run started the kubectl way, left to run beside the schedule test (checked after it)."""
    created = argo.run("create", "-f", str(REPO / "manifests" / "runs" / "argo-run.yaml"))
    return created.stdout.split()[0].split("/")[-1]


def _monitor(batch: str, wait: bool = True) -> subprocess.CompletedProcess:
    args = [
        "submit",
        "--engine",
        "argo",
        "--context",
        CONTEXT,
        "--package",
        str(REPO / "pipelines" / "compiled" / "monitor_pipeline.yaml"),
        "--param",
        f"data_uri={batch}@latest",
        "--param",
        f"model_name={MODEL}",
        "--param",
        "allow_retrain=true",
        "--param",
        f"store_uri={STORE}",
    ]
    return mlops(*args, *(["--wait"] if wait else []))


def _branch(run: dict) -> str:
    nodes = [n for n in run["status"]["nodes"].values() if n.get("displayName") == "condition-1"]
    return nodes[0]["phase"] if nodes else "absent"


def test_cron_schedule_starts_a_run_that_succeeds(argo, trained, kubectl_run, tmp_path):
    """An every-minute schedule of the monitor on a clean batch: it fires, the run succeeds, and the
    clean batch does not take the retrain branch."""
    schedule = {
        "name": "argo-every-minute",
        "cron": "0 * * * * *",
        "pipeline": "monitor",
        "params": {
            "data_uri": "demo-wine-clean@latest",
            "model_name": MODEL,
            "store_uri": STORE,
            "allow_retrain": True,
        },
    }
    (tmp_path / "every-minute.yaml").write_text(yaml.safe_dump(schedule))
    synced = mlops("schedules", "sync", "--engine", "argo", "--context", CONTEXT, "--dir", str(tmp_path), timeout=120)
    assert synced.returncode == 0 and "created: argo-every-minute" in synced.stdout, synced.stderr
    cron = argo.json("-n", NAMESPACE, "get", "cronworkflow", "argo-every-minute")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["timezone"] == "UTC"
    try:

        def fired():
            items = argo.json("-n", NAMESPACE, "get", "workflows", "-l", "mlops.io/schedule=argo-every-minute")["items"]
            return items[0]["metadata"]["name"] if items else None

        name = argo.wait_for("the schedule to start a run", 150, fired, interval=5)
        # only this run: nothing else fires while it runs (Forbid), then it is suspended
        run = wait_finished(argo, name, timeout=900)
        assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
        assert _branch(run) in ("Skipped", "Omitted"), "a clean batch must not retrain"
    finally:
        (tmp_path / "none-left").mkdir()
        removed = mlops(
            "schedules",
            "sync",
            "--engine",
            "argo",
            "--context",
            CONTEXT,
            "--dir",
            str(tmp_path / "none-left"),
            timeout=120,
        )
        assert removed.returncode == 0 and "deleted: argo-every-minute" in removed.stdout, removed.stderr


def test_kubectl_create_starts_a_run(argo, kubectl_run):
    name = kubectl_run
    run = wait_finished(argo, name)
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert run["spec"]["workflowTemplateRef"]["name"] == "training-pipeline"
    listed = mlops("runs", "list", "--context", CONTEXT, timeout=60)
    assert listed.returncode == 0 and name in listed.stdout
    shown = mlops("runs", "show", "--context", CONTEXT, name, timeout=60)
    assert "state:    Succeeded" in shown.stdout and "[register]" in shown.stdout
    logs = mlops("runs", "logs", "--context", CONTEXT, name, "--task", "ingest", timeout=60)
    assert logs.returncode == 0 and "==> ingest <==" in logs.stdout and "[ingest]" in logs.stdout


def test_monitor_retrains_on_a_drifted_batch_in_the_cluster(argo, trained):
    result = _monitor("demo-wine-shifted")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decision: retrain (action: retrain)" in result.stdout
    assert f"retrain: {MODEL}@" in result.stdout
    run = workflow(argo, result.stdout.split()[1])
    assert _branch(run) == "Succeeded"
    retrained = [n for n in pods_of(run) if "--training-pipeline--register" in n["templateName"]]
    assert retrained and retrained[0]["phase"] == "Succeeded"


def test_workflow_pods_ran_under_restricted_pod_security(argo, bad_run):
    labels = argo.json("get", "namespace", NAMESPACE)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    # a failed run's pods are kept (a succeeded run's are removed 5 minutes after it)
    pods = argo.json("-n", NAMESPACE, "get", "pods", "-l", f"workflows.argoproj.io/workflow={bad_run}")
    assert pods["items"], "the failed run's pods are kept"
    for pod in pods["items"]:
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, (pod["metadata"]["name"], container["name"])
            assert context.get("capabilities", {}).get("drop") == ["ALL"]
        assert pod["spec"]["securityContext"].get("runAsNonRoot") is True
        assert pod["spec"]["serviceAccountName"] == "mlops-workflow"
