"""GitOps on the cluster: which commit started which run, and what Flux says.

`mlops gitops status` joins three things: the recent commits of the GitOps
repository (a local clone: the one `make gitops-push` keeps), the Workflows labelled
with the commit they were keyed on (mlops/cluster/argo_client.py), and the state
of Flux's Kustomization and of the synced submit Job, whose one-line reason is
what a commit with invalid parameters leaves behind.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from mlops.cluster import argo_client
from mlops.cluster.kfp_client import ClusterError

FLUX_NAMESPACE = "flux-system"
KUSTOMIZATION = "mlops-gitops"
SUBMIT_JOB = "mlops-gitops-submit"


@dataclasses.dataclass
class CommitRun:
    commit: str
    subject: str
    run: str = ""
    state: str = ""


@dataclasses.dataclass
class SyncState:
    revision: str  # the commit Flux applied last ("" before the first)
    ready: str  # True, False or Unknown
    message: str  # the Kustomization's Ready message
    job: str  # the submit Job: Complete, Failed, Running or absent
    job_message: str  # its pod's one-line reason when it failed


def recent_commits(clone: Path, limit: int = 10) -> list[tuple[str, str]]:
    """(commit, subject) of the clone's main branch, newest first."""
    done = subprocess.run(
        ["git", "-C", str(clone), "log", f"-{limit}", "--format=%H%x09%s", "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"no GitOps clone at {clone}: run make gitops-push first")
    return [tuple(line.split("\t", 1)) for line in done.stdout.splitlines() if "\t" in line]  # type: ignore[misc]


def join(commits: list[tuple[str, str]], workflows: list[dict]) -> list[CommitRun]:
    """Each commit with the run keyed on it (the newest, if several pipelines ran)."""
    by_commit: dict[str, dict] = {}
    for workflow in workflows:  # newest first: keep the first seen
        commit = workflow["metadata"].get("annotations", {}).get(argo_client.ANNOTATION_COMMIT, "")
        by_commit.setdefault(commit, workflow)
    rows = []
    for commit, subject in commits:
        found = by_commit.get(commit)
        if found is None:
            rows.append(CommitRun(commit, subject))
        else:
            state = found.get("status", {}).get("phase") or "Pending"
            rows.append(CommitRun(commit, subject, found["metadata"]["name"], state))
    return rows


def sync_state(custom, batch, core, namespace: str) -> SyncState:
    """Flux's Kustomization and the submit Job, read from the API."""
    from kubernetes.client.exceptions import ApiException

    try:
        kustomization = custom.get_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", FLUX_NAMESPACE, "kustomizations", KUSTOMIZATION
        )
    except ApiException as error:
        if error.status != 404:
            raise
        return SyncState("", "Unknown", "no Flux Kustomization: run make gitops-up", "absent", "")
    status = kustomization.get("status", {})
    ready: dict = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
    job_state, job_message = job_status(batch, core, namespace)
    return SyncState(
        status.get("lastAppliedRevision", ""),
        ready.get("status", "Unknown"),
        " ".join(str(ready.get("message", "")).split()),
        job_state,
        job_message,
    )


def job_status(batch, core, namespace: str) -> tuple[str, str]:
    """The submit Job's state and, when it failed, the last line its pod wrote."""
    from kubernetes.client.exceptions import ApiException

    try:
        job = batch.read_namespaced_job(SUBMIT_JOB, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return "absent", ""
    conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"}
    if "Complete" in conditions:
        return "Complete", ""
    if "Failed" not in conditions:
        return "Running", ""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={SUBMIT_JOB}").items
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True):
        for status in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
            terminated = status.state.terminated if status.state else None
            if terminated and terminated.exit_code and terminated.message:
                lines = [line for line in terminated.message.splitlines() if line.strip()]
                return "Failed", lines[-1].strip() if lines else ""
    return "Failed", " ".join(str(conditions["Failed"].message or "").split())
