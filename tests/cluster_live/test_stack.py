"""Our MinIO stack on a real kind cluster, from our own manifests: the node,
storage (a PVC binds), the MinIO pod from our image, the bucket Job, the Secrets
from the secretGenerator, Pod Security `restricted` enforced by the API server,
NetworkPolicy enforced, and MinIO reachable from the host through kind's port
mapping."""

from __future__ import annotations

import http.client
import re

import pytest
import yaml
from live_cluster import REPO, images, pod_manifest, run_pod, secret_values

pytestmark = pytest.mark.cluster

MINIO_HOST = "minio.mlops-minio.svc.cluster.local"


def test_node_ready(kube):
    nodes = kube.json("get", "nodes")["items"]
    assert nodes, "no nodes"
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
    version = kube.json("version")["serverVersion"]["gitVersion"]
    print(
        f"{len(nodes)} node(s) Ready, Kubernetes {version}, "
        f"runtime {nodes[0]['status']['nodeInfo']['containerRuntimeVersion']}"
    )


def test_system_pods_run(kube):
    """CoreDNS, kube-proxy and the storage provisioner are up (all from images built
    or pulled for this cluster); nothing in kube-system is failing."""
    pods = kube.json("get", "pods", "-A")["items"]
    names = [p["metadata"]["name"] for p in pods]
    for name in ("coredns-", "kube-proxy-", "etcd-", "kube-apiserver-"):
        assert any(n.startswith(name) for n in names), f"no {name}* pod in {names}"
    bad = [
        (p["metadata"]["namespace"], p["metadata"]["name"], p["status"].get("phase"))
        for p in pods
        if p["metadata"]["namespace"] in ("kube-system", "local-path-storage")
        and p["status"].get("phase") not in ("Running", "Succeeded")
    ]
    assert not bad, bad


def test_default_storage_class(kube):
    classes = kube.json("get", "storageclass")["items"]
    default = [
        c
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(default) == 1, [c["metadata"]["name"] for c in classes]


def test_minio_pvc_bound(kube, minio_stack):
    pvc = kube.json("-n", "mlops-minio", "get", "pvc", "minio-data")
    assert pvc["status"]["phase"] == "Bound"
    pv = kube.json("get", "pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["capacity"]["storage"] == pvc["spec"]["resources"]["requests"]["storage"]


def test_minio_runs_from_our_image(kube, minio_stack):
    pods = kube.json("-n", "mlops-minio", "get", "pods", "-l", "app.kubernetes.io/name=minio")
    running = [p for p in pods["items"] if p["status"]["phase"] == "Running"]
    assert len(running) == 1, [p["status"]["phase"] for p in pods["items"]]
    pod = running[0]
    assert pod["spec"]["containers"][0]["image"] == images()["MINIO_IMAGE"]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["restartCount"] == 0
    assert pod["spec"]["securityContext"]["runAsUser"] == 10002


def test_bucket_job_created_both_buckets(kube, minio_stack):
    job = kube.json("-n", "mlops-minio", "get", "job", "minio-buckets")
    assert job["status"].get("succeeded") == 1
    logs = kube.run("-n", "mlops-minio", "logs", "job/minio-buckets").stdout
    for bucket in ("mlpipeline/", "mlops/"):
        assert bucket in logs, logs


def test_secrets_come_from_the_generator(kube, minio_stack, minio_env):
    """Root's credential only in mlops-minio (hash-suffixed); each role's under its exact name."""
    generated = [d for d in minio_stack if d["kind"] == "Secret"]
    names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in generated}
    minio_secret = next(n for ns, n in names if n.startswith("minio-credentials-"))
    assert re.fullmatch(r"minio-credentials-[a-z0-9]{10}", minio_secret)  # hash suffix
    for name in ("mlpipeline-minio-artifact", "mlops-role-pipeline", "mlops-role-registry"):
        assert ("kubeflow", name) in names  # exact names, no suffix
    live_minio = secret_values(kube.json("-n", "mlops-minio", "get", "secret", minio_secret))
    assert live_minio == {"accesskey": minio_env["accesskey"], "secretkey": minio_env["secretkey"]}
    live_kfp = secret_values(kube.json("-n", "kubeflow", "get", "secret", "mlpipeline-minio-artifact"))
    artifacts = dict(
        line.split("=", 1)
        for line in (REPO / "manifests/overlays/kind/role-artifacts.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert live_kfp == artifacts != live_minio
    deployment = kube.json("-n", "mlops-minio", "get", "deployment", "minio")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs == {minio_secret}


def test_bucket_job_created_a_user_per_role(kube, minio_stack):
    logs = kube.run("-n", "mlops-minio", "logs", "job/minio-buckets").stdout
    for role in ("artifacts", "pipeline", "registry", "reader"):
        assert f"role {role}: policy mlops-{role} attached to its user" in logs, logs


def test_store_config_map_in_kubeflow(kube, minio_stack):
    data = kube.json("-n", "kubeflow", "get", "configmap", "mlops-store")["data"]
    expected = yaml.safe_load((REPO / "manifests/base/kfp/mlops-store-config.yaml").read_text())
    assert data == expected["data"]


def test_pod_security_restricted_is_enforced(kube, minio_stack):
    """The API server itself rejects a pod that breaks `restricted` in mlops-minio,
    and admits a compliant one (both as server-side dry runs)."""
    labels = kube.json("get", "namespace", "mlops-minio")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    image = images()["MINIO_IMAGE"]
    good = pod_manifest("psa-probe", "mlops-minio", image, "true")
    ok = kube.run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(good), check=False)
    assert ok.returncode == 0, ok.stderr
    bad = pod_manifest("psa-probe", "mlops-minio", image, "true")
    bad["spec"]["securityContext"] = {}
    bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    rejected = kube.run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr, rejected.stderr
    assert "privileged" in rejected.stderr


def probe_script(host: str, port: int) -> str:
    return f'if timeout 5 bash -c "exec 3<>/dev/tcp/{host}/{port}"; then echo OPEN; else echo CLOSED; fi'


def test_network_policy_lets_kubeflow_reach_minio(kube, minio_stack):
    """The pipeline's namespace (kubeflow) may reach MinIO's S3 port."""
    pod = pod_manifest("np-probe-allowed", "kubeflow", images()["MINIO_IMAGE"], probe_script(MINIO_HOST, 9000))
    phase, logs = run_pod(kube, pod)
    assert phase == "Succeeded" and "OPEN" in logs, logs


def test_network_policy_blocks_other_namespaces(kube, minio_stack):
    """From any other namespace MinIO is closed: the policy is enforced, not just
    stored (kube-router's controller on the built node image; kindnet on kind's)."""
    kube.run("create", "namespace", "np-probe", check=False)
    try:
        pod = pod_manifest("np-probe-denied", "np-probe", images()["MINIO_IMAGE"], probe_script(MINIO_HOST, 9000))
        phase, logs = run_pod(kube, pod)
        assert phase == "Succeeded" and "CLOSED" in logs, logs
    finally:
        kube.run("delete", "namespace", "np-probe", "--wait=false", check=False)


def test_minio_reachable_from_the_host(minio_stack):
    """kind-config.yaml maps 127.0.0.1:9000 to MinIO's NodePort 30900."""
    conn = http.client.HTTPConnection("127.0.0.1", 9000, timeout=10)
    try:
        conn.request("GET", "/minio/health/ready")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
