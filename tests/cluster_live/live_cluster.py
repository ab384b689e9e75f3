"""Helpers of the live cluster tests (tests/cluster_live): tools, kubectl on the
test context, rendering our MinIO stack, run-once probe pods."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() == "true"
FORCED = os.environ.get("MLOPS_TEST_CLUSTER") == "1"
CLUSTER = os.environ.get("KIND_CLUSTER", "mlops")
CONTEXT = os.environ.get("KUBE_CONTEXT") or f"kind-{CLUSTER}"
MINIO_ENV = REPO / "manifests" / "overlays" / "kind" / "minio.env"


def images() -> dict[str, str]:
    """NAME=ref lines of scripts/images.py (the one source of image names)."""
    out = subprocess.run(
        ["python3", str(REPO / "scripts" / "images.py")], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def find_tool(name: str) -> str | None:
    """The pinned build (scripts/kind/build.sh, .tools) before the one on PATH."""
    env = os.environ.get(name.upper())
    if env and shutil.which(env):
        return shutil.which(env)
    candidates = [REPO / ".tools" / "bin" / name]
    pinned = subprocess.run(
        [str(REPO / "scripts" / "kind" / "build.sh"), "path"], capture_output=True, text=True
    ).stdout.strip()
    if pinned:
        candidates.insert(0, Path(pinned) / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return shutil.which(name)


def cluster_answers() -> bool:
    kubectl = find_tool("kubectl")
    if not kubectl:
        return False
    try:
        proc = subprocess.run(
            [kubectl, "--context", CONTEXT, "--request-timeout=5s", "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def need(name: str) -> str:
    path = find_tool(name)
    if path:
        return path
    message = f"{name} not found (make tools; scripts/kind/build.sh tools)"
    if IN_CI:
        pytest.fail(message + " (CI=true: the tool must be present)")
    pytest.skip(message)


class Kube:
    """kubectl on the test cluster's context."""

    def __init__(self, kubectl: str):
        self.kubectl = kubectl

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.kubectl, "--context", CONTEXT, *args], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def wait_for(self, what: str, timeout: float, predicate, interval: float = 2.0):
        """Poll predicate() until it returns a true value; fail with `what` after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def render_minio_stack(kustomize: str, workdir: Path) -> str:
    """manifests/base/minio plus what manifests/overlays/kind adds that does not
    need KFP: its own resources (not the KFP bases), its secretGenerator (the Secret
    mlpipeline-minio-artifact created in namespace kubeflow instead of replacing
    upstream's), its MinIO NodePort patch, and the ConfigMap mlops-store of
    base/kfp and its egress NetworkPolicy of pipeline pods, with a Namespace kubeflow. Built from a kustomization
    written here that points at the repo's own files (kustomize wants relative paths)."""
    overlay_dir = REPO / "manifests" / "overlays" / "kind"
    overlay = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    resources = []
    for r in overlay["resources"]:
        path = (overlay_dir / r).resolve()
        if path.name.startswith("kfp"):
            continue  # KFP itself: fetched from GitHub at deploy time, not run here
        resources.append(os.path.relpath(path, workdir))
    (workdir / "kubeflow-namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubeflow\n")
    resources += [
        "kubeflow-namespace.yaml",
        *(
            os.path.relpath(REPO / "manifests" / "base" / "kfp" / name, workdir)
            for name in ("mlops-store-config.yaml", "pipeline-egress.yaml")
        ),
    ]
    generators = []
    for g in overlay["secretGenerator"]:
        g = dict(g)
        g.pop("behavior", None)  # nothing upstream to replace here
        g["envs"] = [os.path.relpath(overlay_dir / e, workdir) for e in g["envs"]]
        generators.append(g)
    patches = []
    for p in overlay.get("patches", []):
        docs = [d for d in yaml.safe_load_all((overlay_dir / p["path"]).read_text()) if d]
        keep = [d for d in docs if d["metadata"].get("namespace") == "mlops-minio"]
        name = f"patch-{Path(p['path']).stem}.yaml"
        (workdir / name).write_text(yaml.safe_dump_all(keep, sort_keys=False))
        patches.append({"path": name})
    (workdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": resources,
                "secretGenerator": generators,
                "patches": patches,
            },
            sort_keys=False,
        )
    )
    proc = subprocess.run(
        [kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"kustomize build failed:\n{proc.stderr}"
    return proc.stdout


def secret_values(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def pod_manifest(name: str, namespace: str, image: str, script: str, labels: dict | None = None) -> dict:
    """A run-once Pod that complies with Pod Security `restricted`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10002,
                "runAsGroup": 10002,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/bash", "-c", script],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def run_pod(kube: Kube, pod: dict, timeout: float = 120, containers: tuple[str, ...] = ()) -> tuple[str, str]:
    """Create the pod, wait until it ends, return (phase, logs of `containers`, or of the
    only container); the pod is deleted."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    kube.run("-n", ns, "delete", "pod", name, "--ignore-not-found", "--wait=true")
    kube.run("create", "-f", "-", input=json.dumps(pod))
    try:
        phase = kube.wait_for(
            f"pod {ns}/{name} to finish",
            timeout,
            lambda: (lambda p: p if p in ("Succeeded", "Failed") else None)(
                kube.json("-n", ns, "get", "pod", name).get("status", {}).get("phase")
            ),
        )
        if not containers:
            return phase, kube.run("-n", ns, "logs", name, check=False).stdout
        logs = []
        for container in containers:
            out = kube.run("-n", ns, "logs", name, "-c", container, check=False)
            logs.append(f"--- {container} ---\n{out.stdout}{out.stderr}")
        if phase != "Succeeded":
            statuses = kube.json("-n", ns, "get", "pod", name).get("status", {})
            logs.append(
                json.dumps({k: statuses.get(k) for k in ("initContainerStatuses", "containerStatuses")}, indent=1)[
                    -3000:
                ]
            )
        return phase, "\n".join(logs)
    finally:
        kube.run("-n", ns, "delete", "pod", name, "--ignore-not-found", "--wait=false", check=False)
