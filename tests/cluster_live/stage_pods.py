"""One pipeline task of the compiled spec as one Kubernetes Pod, with what KFP would give it.

Not an orchestrator: the test runs the pods one after another itself. What KFP's
driver and launcher do around a task is done here by plain containers so the
task's own container stays exactly as the compiled spec and ``apply_task_settings``
define it:

- inputs: each parameter resolved from the pipeline's root DAG (a run parameter, a
  default, or an earlier task's output parameter); each input artifact downloaded
  from KFP's bucket by an init container with ``mc`` (the artifacts role, as the
  launcher would), to the local path the KFP executor maps ``minio://`` URIs to;
- the task: the spec's image, command and args with ``{{$}}`` replaced by the
  executor input; env from its role's Secret and the mlops-store ConfigMap; its
  resources, security context and emptyDir; plus what the workflow-controller
  ConfigMap's ``workflowDefaults`` podSpecPatch adds on a real KFP (the read-only
  root filesystem and the launcher's writable paths);
- outputs: a last container uploads the output artifacts and the executor output
  (parameter values, artifact metadata) to KFP's bucket.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
KFP_BUCKET = "mlpipeline"
MINIO_HOST = "minio.mlops-minio.svc.cluster.local:9000"
ARTIFACT_SECRET = "mlpipeline-minio-artifact"
LOCAL_OUTPUT = "/tmp/kfp_outputs/output_metadata.json"  # the executor output file, as KFP's launcher names it
V2_LABEL = {"pipelines.kubeflow.org/v2_component": "true"}


def load_spec(name: str = "training_pipeline.yaml") -> tuple[dict, dict]:
    """(pipeline spec, Kubernetes platform spec) of a compiled pipeline in git."""
    pipeline, platform = yaml.safe_load_all((REPO / "pipelines" / "compiled" / name).read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]


def workflow_defaults_patch() -> dict:
    """The podSpecPatch our workflow-controller ConfigMap gives every step on a real KFP."""
    config_map = yaml.safe_load(
        (REPO / "manifests" / "base" / "kfp" / "workflow-controller-configmap.yaml").read_text()
    )
    return yaml.safe_load(yaml.safe_load(config_map["data"]["workflowDefaults"])["spec"]["podSpecPatch"])


def resolve_parameters(pipeline: dict, task: str, run_parameters: dict, outputs: dict[str, dict]) -> dict:
    """A task's input parameter values, resolved as KFP's driver does for a root-DAG task."""
    defaults = {
        name: spec.get("defaultValue") for name, spec in pipeline["root"]["inputDefinitions"]["parameters"].items()
    }
    values = {}
    for name, source in pipeline["root"]["dag"]["tasks"][task]["inputs"].get("parameters", {}).items():
        if "componentInputParameter" in source:
            key = source["componentInputParameter"]
            values[name] = run_parameters[key] if key in run_parameters else defaults[key]
        elif "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            values[name] = outputs[producer["producerTask"]]["parameterValues"][producer["outputParameterKey"]]
        elif "runtimeValue" in source:
            values[name] = source["runtimeValue"]["constant"]
        else:
            raise ValueError(f"input {name!r} of task {task!r}: {source} is not resolved by this helper")
    return values


def executor_input(pipeline: dict, task: str, run_id: str, run_parameters: dict, outputs: dict[str, dict]) -> dict:
    """The executor input KFP would hand the task: inputs, and where each output goes."""
    component = pipeline["components"][pipeline["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    artifacts = {}
    for name, source in pipeline["root"]["dag"]["tasks"][task]["inputs"].get("artifacts", {}).items():
        producer = source["taskOutputArtifact"]
        artifacts[name] = outputs[producer["producerTask"]]["artifacts"][producer["outputArtifactKey"]]
    produced = {}
    for name, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        produced[name] = {
            "artifacts": [
                {
                    "name": name,
                    "type": spec["artifactType"],
                    "metadata": {},
                    "uri": f"minio://{KFP_BUCKET}/v2/artifacts/{run_id}/{task}/{name}",
                }
            ]
        }
    parameters = {
        name: {"outputFile": f"/tmp/kfp_outputs/{name}"}
        for name in component.get("outputDefinitions", {}).get("parameters", {})
    }
    return {
        "inputs": {
            "parameterValues": resolve_parameters(pipeline, task, run_parameters, outputs),
            "artifacts": artifacts,
        },
        "outputs": {"artifacts": produced, "parameters": parameters, "outputFile": LOCAL_OUTPUT},
    }


def _local_path(uri: str) -> str:
    assert uri.startswith("minio://"), uri
    return "/minio/" + uri[len("minio://") :]


def _mc_container(name: str, image: str, script: str, mounts: list[dict]) -> dict:
    """mc with the artifacts role's credential, as KFP's launcher has it."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-ec", script],
        "env": [
            {"name": "ACCESS", "valueFrom": {"secretKeyRef": {"name": ARTIFACT_SECRET, "key": "accesskey"}}},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": ARTIFACT_SECRET, "key": "secretkey"}}},
            {"name": "MC_HOST_kfp", "value": f"http://$(ACCESS):$(SECRET)@{MINIO_HOST}"},
            {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10002,
            "runAsGroup": 10002,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def task_container(pipeline: dict, platform: dict, task: str, inputs: dict) -> dict:
    """The task's container, from the compiled spec alone (plus the workflowDefaults patch)."""
    executor_label = pipeline["components"][pipeline["root"]["dag"]["tasks"][task]["componentRef"]["name"]][
        "executorLabel"
    ]
    container = pipeline["deploymentSpec"]["executors"][executor_label]["container"]
    k8s = platform["executors"][executor_label]
    env = []
    for ref in k8s.get("secretAsEnv", []):
        for pair in ref["keyToEnv"]:
            env.append(
                {
                    "name": pair["envVar"],
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": ref["secretName"],
                            "key": pair["secretKey"],
                            "optional": bool(ref.get("optional")),
                        }
                    },
                }
            )
    for ref in k8s.get("configMapAsEnv", []):
        for pair in ref["keyToEnv"]:
            env.append(
                {
                    "name": pair["envVar"],
                    "valueFrom": {
                        "configMapKeyRef": {
                            "name": ref["configMapName"],
                            "key": pair["configMapKey"],
                            "optional": bool(ref.get("optional")),
                        }
                    },
                }
            )
    resources = container.get("resources", {})
    context = k8s.get("securityContext", {})
    patch = next(c for c in workflow_defaults_patch()["containers"] if c["name"] == "main")
    mounts = {
        m["mountPath"]: {"name": m["volumeName"], "mountPath": m["mountPath"]} for m in k8s.get("emptyDirMounts", [])
    }
    for mount in patch.get("volumeMounts", []):
        mounts.setdefault(mount["mountPath"], dict(mount))
    return {
        "name": "task",
        "image": container["image"],
        "imagePullPolicy": "IfNotPresent",
        "command": container["command"],
        "args": [json.dumps(inputs) if arg == "{{$}}" else arg for arg in container["args"]],
        "env": env,
        "resources": {
            "requests": {"cpu": resources["resourceCpuRequest"], "memory": resources["resourceMemoryRequest"]},
            "limits": {"cpu": resources["resourceCpuLimit"], "memory": resources["resourceMemoryLimit"]},
        },
        # KFP's compiler defaults (no privilege gain, no capabilities, RuntimeDefault seccomp),
        # the task's own identity, and the workflowDefaults patch's read-only root.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": int(context["runAsUser"]),
            "runAsGroup": int(context["runAsGroup"]),
            "runAsNonRoot": bool(context["runAsNonRoot"]),
            **patch.get("securityContext", {}),
        },
        "volumeMounts": list(mounts.values()),
    }


def stage_pod(
    pipeline: dict,
    platform: dict,
    task: str,
    inputs: dict,
    pod_name: str,
    mc_image: str,
    output_key: str,
    namespace: str = "kubeflow",
) -> dict:
    """The Pod: fetch inputs (init), the task (init, so it ends before the upload), then upload
    the outputs and the executor output (to ``output_key`` in KFP's bucket)."""
    main = task_container(pipeline, platform, task, inputs)
    volumes = {v["name"]: v for v in workflow_defaults_patch()["volumes"]}
    for m in main["volumeMounts"]:
        volumes.setdefault(m["name"], {"name": m["name"], "emptyDir": {}})
    shared = [
        {"name": m["name"], "mountPath": m["mountPath"]}
        for m in main["volumeMounts"]
        if m["mountPath"] in ("/tmp", "/minio")
    ]
    # A new pod's first packets can precede its NetworkPolicy programming: wait for MinIO first.
    fetch = [
        "umask 000",
        "n=0; until timeout 10 mc ready --quiet kfp; do n=$((n+1)); [ $n -lt 30 ] || exit 1; sleep 1; done",
    ]
    for entry in inputs["inputs"]["artifacts"].values():
        remote = "kfp/" + entry["artifacts"][0]["uri"][len("minio://") :]
        local = _local_path(entry["artifacts"][0]["uri"])
        # an artifact is one object (a file) or a prefix (a directory)
        fetch.append(f"mkdir -p {shlex.quote(str(Path(local).parent))}")
        fetch.append(
            f"mc cp --quiet {shlex.quote(remote)} {shlex.quote(local)} "
            f"|| {{ mkdir -p {shlex.quote(local)} && "
            f"mc cp --recursive --quiet {shlex.quote(remote)}/ {shlex.quote(local)}/; }}"
        )
    # the task runs as another user (10001): what was fetched must be writable for it
    fetch.append("find /minio /tmp -mindepth 1 -exec chmod a+rwX {} +")
    upload = []
    for entry in inputs["outputs"]["artifacts"].values():
        remote = "kfp/" + entry["artifacts"][0]["uri"][len("minio://") :]
        local = _local_path(entry["artifacts"][0]["uri"])
        upload.append(
            f"if [ -d {shlex.quote(local)} ]; then mc cp --recursive --quiet {shlex.quote(local)}/ "
            f"{shlex.quote(remote)}/; else mc cp --quiet {shlex.quote(local)} {shlex.quote(remote)}; fi"
        )
    upload.append(f"mc cp --quiet {LOCAL_OUTPUT} {shlex.quote(f'kfp/{KFP_BUCKET}/{output_key}')}")
    upload.append(f"echo uploaded {shlex.quote(output_key)}")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": {**V2_LABEL, "app.kubernetes.io/component": "stage-pod-test"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [_mc_container("fetch-inputs", mc_image, "\n".join(fetch), shared), main],
            "containers": [_mc_container("upload-outputs", mc_image, "\n".join(upload), shared)],
            "volumes": list(volumes.values()),
        },
    }
