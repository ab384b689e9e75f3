"""Runs on Argo Workflows through the Kubernetes API: `mlops submit --engine argo`, `mlops runs`.

A run is a Workflow that references the pipeline's WorkflowTemplate (written by
`mlops compile` from the compiled KFP spec, applied here when it changed). It is
named after its idempotency key (the same key as the KFP path: spec, parameters
and commit), so the API server itself refuses a second run with the same key.

Nothing here talks to a cluster at import time; every function takes the
``CustomObjectsApi`` (and ``CoreV1Api``) it uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mlops import config
from mlops.cluster import argo
from mlops.cluster.kfp_client import ClusterError, run_key

GROUP, VERSION = "argoproj.io", "v1alpha1"
LABEL_KEY = "mlops.io/run-key"
LABEL_COMMIT = "mlops.io/commit"
ANNOTATION_COMMIT = "mlops.io/commit"
FINISHED = {"Succeeded", "Failed", "Error"}
_POD_PREFIX = re.compile(r"^(?:main|init|wait): [A-Za-z]+ \(exit code \d+\):\s*")


@dataclasses.dataclass
class Clients:
    custom: Any
    core: Any
    namespace: str


def connect(context: str | None = None, namespace: str | None = None) -> Clients:
    """API clients for a kubeconfig context (or the in-cluster service account)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        kube_config.load_kube_config(context=context)
    except Exception:  # noqa: BLE001 - no kubeconfig: in a pod, use its service account
        if context:
            raise ClusterError(f"no kubeconfig context {context!r}") from None
        kube_config.load_incluster_config()
    return Clients(client.CustomObjectsApi(), client.CoreV1Api(), namespace or config.ARGO_NAMESPACE)


def describe_error(error: BaseException) -> str:
    """One line for an API error: its status and the server's message."""
    status = getattr(error, "status", None)
    body = getattr(error, "body", None)
    if status and body:
        try:
            message = json.loads(body).get("message", "")
        except (TypeError, ValueError):
            message = str(body)
        return f"HTTP {status}: {' '.join(str(message).split())}"
    return " ".join(str(error).split()) or type(error).__name__


ANNOTATION_TEMPLATE = "mlops.io/template-sha256"


def template_for(package_path) -> dict:
    """The WorkflowTemplate of a compiled spec (translated now, so it matches the spec exactly),
    with the digest of its whole content: what a run executes is the spec as translated."""
    template = argo.translate_file(package_path)
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    template["metadata"]["annotations"][ANNOTATION_TEMPLATE] = digest
    return template


def ensure_template(clients: Clients, template: dict) -> str:
    """Create the WorkflowTemplate, or replace it when its spec digest differs; 'created', 'updated' or 'current'."""
    from kubernetes.client.exceptions import ApiException

    name = template["metadata"]["name"]
    body = {**template, "metadata": {**template["metadata"], "namespace": clients.namespace}}
    try:
        current = clients.custom.get_namespaced_custom_object(
            GROUP, VERSION, clients.namespace, "workflowtemplates", name
        )
    except ApiException as error:
        if error.status != 404:
            raise
        clients.custom.create_namespaced_custom_object(GROUP, VERSION, clients.namespace, "workflowtemplates", body)
        return "created"
    wanted = template["metadata"]["annotations"][ANNOTATION_TEMPLATE]
    if current["metadata"].get("annotations", {}).get(ANNOTATION_TEMPLATE) == wanted:
        return "current"
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    clients.custom.replace_namespaced_custom_object(GROUP, VERSION, clients.namespace, "workflowtemplates", name, body)
    return "updated"


def workflow_name(pipeline: str, key: str) -> str:
    return f"{pipeline}-{key}"[:63].rstrip("-")


def run_manifest(pipeline: str, params: Mapping[str, Any], key: str, commit: str | None = None) -> dict:
    """A Workflow of the pipeline's WorkflowTemplate with these parameters, named after its key."""
    labels = {argo.LABEL_PIPELINE: pipeline, LABEL_KEY: key}
    annotations = {}
    if commit:
        labels[LABEL_COMMIT] = re.sub(r"[^A-Za-z0-9_.-]", "-", commit)[:63].strip("-_.")
        annotations[ANNOTATION_COMMIT] = commit
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": workflow_name(pipeline, key), "labels": labels, "annotations": annotations},
        "spec": {
            "workflowTemplateRef": {"name": pipeline},
            "arguments": {
                "parameters": [
                    {"name": name, "value": argo.text_value(value)} for name, value in sorted(params.items())
                ]
            },
        },
    }


@dataclasses.dataclass
class Submitted:
    name: str
    created: bool
    key: str
    template: str  # created | updated | current


def submit(
    clients: Clients, package_path, params: Mapping[str, Any], *, key: str | None = None, commit: str | None = None
) -> Submitted:
    """Apply the template if it changed, then create the run unless one with the same key exists."""
    from kubernetes.client.exceptions import ApiException

    template = template_for(package_path)
    pipeline = template["metadata"]["name"]
    template_state = ensure_template(clients, template)
    # keyed on what runs: the translated template (it changes with the spec and with the translation)
    key = key or run_key(template["metadata"]["annotations"][ANNOTATION_TEMPLATE], params, commit)
    manifest = run_manifest(pipeline, params, key, commit)
    try:
        clients.custom.create_namespaced_custom_object(GROUP, VERSION, clients.namespace, "workflows", manifest)
    except ApiException as error:
        if error.status == 409:  # the same key: that run exists already
            return Submitted(manifest["metadata"]["name"], False, key, template_state)
        raise
    return Submitted(manifest["metadata"]["name"], True, key, template_state)


def get(clients: Clients, name: str) -> dict:
    return clients.custom.get_namespaced_custom_object(GROUP, VERSION, clients.namespace, "workflows", name)


def list_runs(clients: Clients, commit: str | None = None) -> list[dict]:
    """Our runs in the namespace, newest first."""
    selector = argo.LABEL_PIPELINE
    if commit:
        selector += f",{LABEL_COMMIT}={commit}"
    items = clients.custom.list_namespaced_custom_object(
        GROUP, VERSION, clients.namespace, "workflows", label_selector=selector
    )["items"]
    return sorted(items, key=lambda w: w["metadata"].get("creationTimestamp", ""), reverse=True)


def message(workflow: dict) -> str:
    """The run's one-line reason (the Workflow's status message, without Argo's container prefix)."""
    return _POD_PREFIX.sub("", workflow.get("status", {}).get("message", "") or "").strip()


def pod_nodes(workflow: dict) -> list[dict]:
    """The task pods of a run (not the exit handler), in the order they finished."""
    nodes = workflow.get("status", {}).get("nodes", {}) or {}
    pods = [
        n
        for n in nodes.values()
        if n.get("type") == "Pod"
        and not n.get("templateName", "").startswith(argo.EXIT_HANDLER)
        and argo.EXIT_HANDLER not in n.get("displayName", "")
    ]
    return sorted(pods, key=lambda n: (n.get("finishedAt") or "9999", n.get("startedAt") or ""))


def task_name(node: dict) -> str:
    """A node's task as the spec names it (the last part of its template's path)."""
    return node.get("templateName", node.get("displayName", "")).split(argo.SEP)[-1]


def outputs(node: dict) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in node.get("outputs", {}).get("parameters", []) or []}


def progress_lines(node: dict) -> list[str]:
    try:
        return list(json.loads(outputs(node).get(argo.PROGRESS_PARAMETER) or "[]"))
    except ValueError:
        return []


def wait(clients: Clients, name: str, emit: Callable[[str], None], timeout: float, poll: float = 2.0) -> dict:
    """Follow a run until it finishes, emitting each task's progress lines as it completes."""
    deadline = time.monotonic() + timeout
    shown: set[str] = set()
    while True:
        workflow = get(clients, name)
        for node in pod_nodes(workflow):
            if node["id"] in shown or node.get("phase") not in ("Succeeded", "Failed", "Error"):
                continue
            shown.add(node["id"])
            for line in progress_lines(node):
                emit(line)
        phase = workflow.get("status", {}).get("phase")
        if phase in FINISHED:
            return workflow
        if time.monotonic() > deadline:
            raise ClusterError(f"run {name} did not finish within {timeout:g} s (phase {phase or 'Pending'})")
        time.sleep(poll)


def task_outputs(workflow: dict, task: str) -> dict[str, str]:
    """The output parameters of the (last) node of a task, by its spec name."""
    found = [n for n in pod_nodes(workflow) if task_name(n) == task and n.get("phase") == "Succeeded"]
    return outputs(found[-1]) if found else {}


def logs(clients: Clients, workflow: dict, task: str | None = None) -> Iterable[tuple[str, str]]:
    """(task, log text) of each task pod's main container, in the order the tasks finished."""
    name = workflow["metadata"]["name"]
    pods = clients.core.list_namespaced_pod(clients.namespace, label_selector=f"workflows.argoproj.io/workflow={name}")
    by_node = {
        (pod.metadata.annotations or {}).get("workflows.argoproj.io/node-id"): pod.metadata.name for pod in pods.items
    }
    for node in pod_nodes(workflow):
        if task and task_name(node) != task:
            continue
        pod = by_node.get(node["id"])
        if pod is None:
            yield task_name(node), "(no log: the pod is gone)"
            continue
        try:
            text = clients.core.read_namespaced_pod_log(pod, clients.namespace, container="main")
        except Exception as error:  # noqa: BLE001 - a pod removed meanwhile: say so, go on
            text = f"(no log: {describe_error(error)})"
        yield task_name(node), text


def summary(workflow: dict) -> dict[str, str]:
    """What the run decided, from its register and evaluate tasks' outputs."""
    registered = task_outputs(workflow, "register")
    evaluated = task_outputs(workflow, "evaluate")
    return {
        **{f"evaluate.{k}": v for k, v in evaluated.items() if k != argo.PROGRESS_PARAMETER},
        **{f"register.{k}": v for k, v in registered.items() if k != argo.PROGRESS_PARAMETER},
    }


def packaged(pipeline: str) -> Path:
    """The compiled spec of a pipeline kind (training, monitor)."""
    from mlops.cluster.schedules import PIPELINES

    return config.COMPILED_DIR / PIPELINES[pipeline][0]
