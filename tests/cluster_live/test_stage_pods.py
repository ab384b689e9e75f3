"""The pipeline's tasks as pods on the real cluster, against the in-cluster MinIO.

ingest (base image) publishes a data version of data a producer dropped in
s3://mlops/incoming; split (base image) writes the three splits as KFP artifacts;
validate (TFDV image) reads them and writes TFDV statistics, schema and anomalies.
Each pod is built from the compiled spec in git alone (tests/cluster_live/stage_pods.py):
its image, command, env from its role's Secret and the mlops-store ConfigMap, its
resources and security context, the read-only root filesystem of the
workflowDefaults patch, and the egress NetworkPolicy of pipeline pods. The test
waits for each pod before starting the next: KFP's own orchestration does not run
here (its backend cannot be built on this machine).

Also here: each role's credential in the cluster can do its job and is refused the
rest, and the egress policy of pipeline pods is enforced.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import yaml
from live_cluster import REPO, images, pod_manifest, run_pod
from stage_pods import KFP_BUCKET, V2_LABEL, executor_input, load_spec, stage_pod

pytestmark = pytest.mark.cluster

HOST_ENDPOINT = "127.0.0.1:9000"  # kind-config.yaml maps it to MinIO's NodePort
OVERLAY = REPO / "manifests" / "overlays" / "kind"
MODEL = "demo-wine"


def env_file(name: str) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (OVERLAY / name).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def client(env_name: str):
    from minio import Minio

    creds = env_file(env_name)
    return Minio(HOST_ENDPOINT, access_key=creds["accesskey"], secret_key=creds["secretkey"], secure=False)


def run_stage(kube, pipeline, platform, task, run_id, run_parameters, outputs, timeout=600) -> dict:
    """One task as a pod; returns its executor output (parameter values, artifacts with URIs)."""
    inputs = executor_input(pipeline, task, run_id, run_parameters, outputs)
    key = f"v2/artifacts/{run_id}/{task}/executor_output.json"
    pod = stage_pod(pipeline, platform, task, inputs, f"stage-{task}-{run_id}"[:63], images()["MINIO_IMAGE"], key)
    started = time.monotonic()
    phase, logs = run_pod(kube, pod, timeout=timeout, containers=("fetch-inputs", "task", "upload-outputs"))
    assert phase == "Succeeded", f"{task} pod {phase}:\n{logs[-4000:]}"
    print(f"{task}: pod Succeeded in {time.monotonic() - started:.0f} s")
    response = client("role-artifacts.env").get_object(KFP_BUCKET, key)
    try:
        output = json.loads(response.read())
    finally:
        response.close()
    # as KFP's launcher records it: the URIs the task was given, with the metadata it wrote
    for name, entry in output.get("artifacts", {}).items():
        entry["artifacts"][0]["type"] = inputs["outputs"]["artifacts"][name]["artifacts"][0]["type"]
    return output


@pytest.fixture(scope="module")
def incoming_data(minio_stack, tmp_path_factory):
    """demo-wine.csv dropped in s3://mlops/incoming by a data producer (the root user here)."""
    from mlops.data.demo import write_demo_data

    csv = next(p for p in write_demo_data(tmp_path_factory.mktemp("demo")) if p.stem == MODEL)
    root = client("minio.env")
    root.fput_object("mlops", f"incoming/{csv.name}", str(csv))
    return f"s3://mlops/incoming/{csv.name}"


@pytest.fixture(scope="module")
def stage_outputs(kube, minio_stack, incoming_data) -> dict[str, dict]:
    pipeline, platform = load_spec()
    run_id = f"pods-{uuid.uuid4().hex[:8]}"
    parameters = {"data_uri": incoming_data, "target": "target", "model_name": MODEL}
    outputs: dict[str, dict] = {}
    for task in ("ingest", "split", "validate"):
        outputs[task] = run_stage(kube, pipeline, platform, task, run_id, parameters, outputs)
    return outputs


def test_ingest_pod_publishes_a_data_version_in_the_cluster_store(stage_outputs, incoming_data, monkeypatch):
    """Read back from the host with the read-only role: the version the pod published, its rows intact."""
    from mlops.store import open_store
    from mlops.store.datasets import DataVersions

    reader = env_file("role-reader.env")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{HOST_ENDPOINT}")
    monkeypatch.setenv("MLOPS_READER_ACCESS_KEY_ID", reader["accesskey"])
    monkeypatch.setenv("MLOPS_READER_SECRET_ACCESS_KEY", reader["secretkey"])
    versions = DataVersions(open_store("s3://mlops/store", role="reader"))
    published = versions.resolve(stage_outputs["ingest"]["parameterValues"]["data_version"])
    # a data version keeps the source of its first publish: the same rows may have been pushed
    # before (the Argo tests push the demo data from the host), so the pod's own output says where it read
    assert published.name == MODEL
    assert stage_outputs["ingest"]["parameterValues"]["source"] == incoming_data
    assert len(versions.read_frame(published)) == 178  # the wine data set, every row


def test_split_pod_writes_three_artifacts_to_kfp_bucket(stage_outputs):
    artifacts = stage_outputs["split"]["artifacts"]
    assert set(artifacts) == {"train", "validation", "test"}
    kfp = client("role-artifacts.env")
    for _name, entry in artifacts.items():
        uri = entry["artifacts"][0]["uri"]
        prefix = uri[len(f"minio://{KFP_BUCKET}/") :]
        objects = list(kfp.list_objects(KFP_BUCKET, prefix=prefix, recursive=True))
        assert objects and sum(o.size for o in objects) > 0, uri
    assert stage_outputs["split"]["parameterValues"]["target"] == "target"


def test_validate_pod_runs_tfdv_and_writes_statistics(stage_outputs):
    artifacts = stage_outputs["validate"]["artifacts"]
    assert {"statistics", "schema", "anomalies"} <= set(artifacts)
    kfp = client("role-artifacts.env")
    sizes = {}
    for name in ("statistics", "schema", "anomalies"):
        prefix = artifacts[name]["artifacts"][0]["uri"][len(f"minio://{KFP_BUCKET}/") :]
        sizes[name] = sum(o.size for o in kfp.list_objects(KFP_BUCKET, prefix=prefix, recursive=True))
    assert sizes["statistics"] > 1000 and sizes["schema"] > 100, sizes
    assert stage_outputs["validate"]["parameterValues"]["schema_source"]


def test_stage_pods_are_admitted_by_pod_security_restricted(kube, minio_stack):
    """The same pods, dry-run into a namespace that enforces `restricted` (mlops-minio)."""
    pipeline, platform = load_spec()
    fake = {
        "ingest": {"parameterValues": {"data_version": "x@1"}},
        "split": {
            "artifacts": {
                n: {"artifacts": [{"uri": f"minio://{KFP_BUCKET}/x/{n}"}]} for n in ("train", "validation", "test")
            },
            "parameterValues": {"target": "t"},
        },
    }
    for task in ("ingest", "split", "validate"):
        inputs = executor_input(
            pipeline, task, "psa", {"data_uri": "s3://mlops/incoming/x.csv", "target": "t", "model_name": MODEL}, fake
        )
        pod = stage_pod(
            pipeline, platform, task, inputs, f"psa-{task}", images()["MINIO_IMAGE"], "x", namespace="mlops-minio"
        )
        done = kube.run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
        assert done.returncode == 0, done.stderr


ROLE_PROBE = """
import os, io, sys
from minio import Minio
from minio.error import S3Error
c = Minio(os.environ["AWS_ENDPOINT_URL"].split("//")[1], os.environ["AWS_ACCESS_KEY_ID"],
          os.environ["AWS_SECRET_ACCESS_KEY"], secure=False)
for key in sys.argv[1:]:
    try:
        c.put_object("mlops", key, io.BytesIO(b"x"), 1)
        print("WROTE", key)
    except S3Error as e:
        print("REFUSED", key, e.code)
"""


@pytest.mark.parametrize(
    "role, allowed, refused",
    [
        ("pipeline", "store/data/probe/x", "store/models/probe/x"),
        ("registry", "store/models/probe/x", "store/data/probe/x"),
    ],
)
def test_each_role_secret_in_the_cluster_writes_only_its_part(kube, minio_stack, role, allowed, refused):
    """A pod with a task's role Secret (as apply_task_settings mounts it) against the in-cluster MinIO."""
    pod = pod_manifest(f"role-probe-{role}", "kubeflow", images()["BASE_IMAGE"], "")
    container = pod["spec"]["containers"][0]
    container["command"] = ["python", "-c", ROLE_PROBE, allowed, refused]
    container["env"] = [
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": f"mlops-role-{role}", "key": "accesskey"}},
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"mlops-role-{role}", "key": "secretkey"}},
        },
        {
            "name": "AWS_ENDPOINT_URL",
            "valueFrom": {"configMapKeyRef": {"name": "mlops-store", "key": "AWS_ENDPOINT_URL"}},
        },
    ]
    container["resources"]["limits"]["memory"] = "256Mi"
    pod["spec"]["securityContext"].update(runAsUser=10001, runAsGroup=10001)
    pod["metadata"]["labels"] = dict(V2_LABEL)
    phase, logs = run_pod(kube, pod, timeout=180)
    assert phase == "Succeeded", logs
    assert f"WROTE {allowed}" in logs and f"REFUSED {refused} AccessDenied" in logs, logs


def test_the_root_credential_is_not_in_the_pipeline_namespace(kube, minio_stack):
    root = env_file("minio.env")["accesskey"]
    secrets = kube.json("-n", "kubeflow", "get", "secrets")["items"]
    import base64

    for secret in secrets:
        values = {base64.b64decode(v).decode(errors="replace") for v in (secret.get("data") or {}).values()}
        assert root not in values, secret["metadata"]["name"]


def probe(host: str, port: int) -> str:
    return (
        f'if timeout 5 bash -c "exec 3<>/dev/tcp/{host}/{port}"; '
        f'then echo "OPEN {host}:{port}"; else echo "CLOSED {host}:{port}"; fi'
    )


def until_open(host: str, port: int, attempts: int = 15) -> str:
    """Wait (up to about four seconds an attempt) until host:port accepts a connection: the network
    policy agent learns a new pod's labels a moment after it starts, and before that a probe sees
    neither the pod's allowances nor its limits (CI saw MinIO refused and the kubelet open)."""
    return (
        f"for attempt in $(seq {attempts}); do "
        f'timeout 2 bash -c "exec 3<>/dev/tcp/{host}/{port}" 2>/dev/null && break; sleep 2; done'
    )


def test_pipeline_pods_egress_is_limited(kube, minio_stack):
    """A pipeline pod (KFP's v2 label) reaches DNS, MinIO and the API server, and nothing else
    (the node's kubelet port stands for everything else); the same pod without the label does."""
    node_ip = next(
        a["address"] for a in kube.json("get", "nodes")["items"][0]["status"]["addresses"] if a["type"] == "InternalIP"
    )
    probes = [
        probe("minio.mlops-minio.svc.cluster.local", 9000),
        probe("kubernetes.default.svc.cluster.local", 443),
        probe(node_ip, 10250),
    ]
    results = {}
    for labelled in (True, False):
        # The pipeline pod first waits until MinIO lets it in: from then on its policies apply.
        script = "; ".join([until_open("minio.mlops-minio.svc.cluster.local", 9000)] * labelled + probes)
        pod = pod_manifest(
            f"egress-probe-{'v2' if labelled else 'other'}",
            "kubeflow",
            images()["MINIO_IMAGE"],
            script,
            labels=dict(V2_LABEL) if labelled else {},
        )
        phase, logs = run_pod(kube, pod, timeout=180)
        assert phase == "Succeeded", logs
        results[labelled] = logs
    assert "OPEN minio.mlops-minio.svc.cluster.local:9000" in results[True], results[True]
    assert "OPEN kubernetes.default.svc.cluster.local:443" in results[True], results[True]
    assert f"CLOSED {node_ip}:10250" in results[True], results[True]
    assert f"OPEN {node_ip}:10250" in results[False], results[False]  # the policy is what closes it
