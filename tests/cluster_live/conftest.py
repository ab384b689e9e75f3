"""Fixtures of the live cluster tests (`make test-cluster`, docs/cluster.md).

Every test here is marked `cluster` and runs against the kind cluster of
KUBE_CONTEXT (default kind-mlops). They are skipped unless that cluster answers
or MLOPS_TEST_CLUSTER=1; once they run, a missing tool (kubectl, kustomize,
docker) skips them, except under CI=true, where it fails them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from live_cluster import CONTEXT, FORCED, HERE, MINIO_ENV, REPO, Kube, cluster_answers, need, render_minio_stack


def pytest_collection_modifyitems(config, items):
    ours = [i for i in items if Path(str(i.fspath)).is_relative_to(HERE)]
    if not ours or FORCED or cluster_answers():
        return
    skip = pytest.mark.skip(reason=f"no kind cluster at context {CONTEXT} (make test-cluster, or MLOPS_TEST_CLUSTER=1)")
    for item in ours:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def kube() -> Kube:
    need("docker")
    k = Kube(need("kubectl"))
    if not cluster_answers():
        pytest.fail(f"MLOPS_TEST_CLUSTER=1 but no cluster answers at context {CONTEXT}: make cluster-up")
    return k


@pytest.fixture(scope="session")
def minio_env() -> dict[str, str]:
    if not MINIO_ENV.is_file():
        pytest.fail(f"{MINIO_ENV.relative_to(REPO)} is missing: make secrets")
    pairs = [
        line.split("=", 1) for line in MINIO_ENV.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="session")
def rendered_stack(tmp_path_factory) -> str:
    """The MinIO stack as YAML (render_minio_stack)."""
    return render_minio_stack(need("kustomize"), tmp_path_factory.mktemp("minio-stack"))


@pytest.fixture(scope="session")
def namespaces(kube, rendered_stack) -> list[str]:
    """Only the stack's Namespaces (mlops-minio with its Pod Security labels, kubeflow)."""
    docs = [d for d in yaml.safe_load_all(rendered_stack) if d and d["kind"] == "Namespace"]
    kube.run("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(docs))
    return [d["metadata"]["name"] for d in docs]


@pytest.fixture(scope="session")
def minio_stack(kube, minio_env, rendered_stack) -> list[dict]:
    """Our MinIO stack applied to the cluster, the Deployment rolled out and the
    bucket Job complete. Returns the applied objects."""
    # as `make deploy` does: the bootstrap Job is re-created, its template cannot change in place
    kube.run("-n", "mlops-minio", "delete", "job", "minio-buckets", "--ignore-not-found")
    kube.run("apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered_stack)
    kube.run("-n", "mlops-minio", "rollout", "status", "deployment/minio", "--timeout=300s", timeout=320)

    def job_done():
        status = kube.json("-n", "mlops-minio", "get", "job", "minio-buckets").get("status", {})
        if status.get("failed", 0) >= 6:
            raise AssertionError(f"bucket Job failed: {status}")
        return status.get("succeeded", 0) >= 1

    try:
        kube.wait_for("the bucket Job to complete", 240, job_done)
    except AssertionError as err:
        logs = kube.run("-n", "mlops-minio", "logs", "job/minio-buckets", "--tail=5", check=False).stdout
        probe = kube.run("-n", "mlops-minio", "exec", "job/minio-buckets", "--", "mc", "ready", "local", check=False)
        if "not ready" in logs and probe.returncode == 0:
            # Seen here: a first `mc ready` that starts before MinIO listens loops
            # forever on its first failure, although a new `mc ready` succeeds.
            raise AssertionError(
                f"{err}: the Job's first `mc ready` never recovers although MinIO is ready "
                f"(a new `mc ready` in the same pod: {probe.stdout.strip()!r}). "
                "manifests/base/minio/bucket-job.yaml needs a bounded check, e.g. "
                "`until timeout 15 mc ready --quiet local; do ...`. Job log:\n" + logs
            ) from None
        raise
    return [d for d in yaml.safe_load_all(rendered_stack) if d]
