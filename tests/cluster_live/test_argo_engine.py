"""Argo Workflows on the kind cluster, built here (`make deploy-argo`; docs/cluster.md,
"Argo Workflows on kind"): hand-written Workflows in mlops-runs on the pipeline's base
image prove that

- an output artifact goes from one step to the next through our MinIO, stored under
  the artifact repository's key format (read back from the host with the artifacts
  role's credential), with `{{pod.name}}` in an explicit key, a fan-out's output
  parameters aggregated for the fan-in step, and a key prefix loaded as a directory;
- every pod, Argo's init and wait containers included, is admitted where Pod Security
  `restricted` is enforced (and a privileged pod is not);
- the workflow identity may create and patch WorkflowTaskResults and nothing else;
- a failed step's termination message becomes its node's message.

The module deploys Argo (`make deploy-argo`) when its controller is not ready yet;
`make test-cluster` has deployed it before the tests (scripts/kind/test-cluster.sh).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml
from live_cluster import CLUSTER, CONTEXT, REPO, images, pod_manifest

pytestmark = pytest.mark.cluster

RUNS = "mlops-runs"
WORKFLOW_SA = f"system:serviceaccount:{RUNS}:mlops-workflow"
CONTROLLER_SA = "system:serviceaccount:argo:workflow-controller"
ROLE_ENV = REPO / "manifests" / "overlays" / "kind" / "role-artifacts.env"
# Every step: restricted by the controller's defaults, plus a writable /tmp of its own.
SCRATCH = {"volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}
VOLUMES = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def controller_ready(kube) -> bool:
    proc = kube.run("-n", "argo", "get", "deployment", "workflow-controller", "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    status = json.loads(proc.stdout).get("status", {})
    return status.get("availableReplicas", 0) >= 1


@pytest.fixture(scope="module")
def argo(kube):
    """Argo deployed (make deploy-argo when its controller is not ready)."""
    if not controller_ready(kube):
        start = time.monotonic()
        proc = subprocess.run(
            ["make", "--no-print-directory", "deploy-argo", f"KIND_CLUSTER={CLUSTER}", f"KUBE_CONTEXT={CONTEXT}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert proc.returncode == 0, f"make deploy-argo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        print(f"make deploy-argo took {time.monotonic() - start:.0f} s")
    kube.wait_for("the workflow controller", 300, lambda: controller_ready(kube))
    return kube


def container(script: str, image: str) -> dict:
    return {"image": image, "command": ["bash", "-ec", script], "resources": RESOURCES, **SCRATCH}


NETCHECK = """for target in minio.mlops-minio.svc.cluster.local:9000 {{inputs.parameters.node}}:6443 \\
    {{inputs.parameters.node}}:10250; do
  if timeout 5 bash -c "exec 3<>/dev/tcp/${target%:*}/${target#*:}" 2>/dev/null; then
    echo "$target OPEN"; else echo "$target CLOSED"; fi
done"""


def probe_workflow(image: str, node_ip: str) -> dict:
    """produce -> consume (an artifact under the key format); part x2 -> gather (explicit
    keys with {{pod.name}}, aggregated parameters, a key prefix as a directory); netcheck
    (where a workflow pod may connect)."""
    parts_key = "argo/{{workflow.namespace}}/{{workflow.name}}/parts"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "argo-probe-", "namespace": RUNS},
        "spec": {
            "entrypoint": "main",
            "activeDeadlineSeconds": 900,
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": "produce", "template": "produce"},
                            {
                                "name": "consume",
                                "template": "consume",
                                "dependencies": ["produce"],
                                "arguments": {
                                    "artifacts": [{"name": "data", "from": "{{tasks.produce.outputs.artifacts.data}}"}]
                                },
                            },
                            {
                                "name": "part",
                                "template": "part",
                                "withParam": '["a", "b"]',
                                "arguments": {"parameters": [{"name": "item", "value": "{{item}}"}]},
                            },
                            {
                                "name": "gather",
                                "template": "gather",
                                "dependencies": ["part"],
                                "arguments": {
                                    "parameters": [
                                        {"name": "items", "value": "{{tasks.part.outputs.parameters.item}}"},
                                        {"name": "infos", "value": "{{tasks.part.outputs.parameters.info}}"},
                                    ],
                                    "artifacts": [{"name": "parts", "s3": {"key": parts_key + "/"}}],
                                },
                            },
                            {
                                "name": "netcheck",
                                "template": "netcheck",
                                "arguments": {"parameters": [{"name": "node", "value": node_ip}]},
                            },
                        ]
                    },
                },
                {
                    "name": "netcheck",
                    "volumes": VOLUMES,
                    "inputs": {"parameters": [{"name": "node"}]},
                    "container": container(NETCHECK, image),
                },
                {
                    "name": "produce",
                    "volumes": VOLUMES,
                    "container": container(
                        'mkdir -p /tmp/out; echo "hello {{workflow.name}}" > /tmp/out/hello.txt', image
                    ),
                    "outputs": {"artifacts": [{"name": "data", "path": "/tmp/out/hello.txt"}]},
                },
                {
                    "name": "consume",
                    "volumes": VOLUMES,
                    "inputs": {"artifacts": [{"name": "data", "path": "/mlops/in/data"}]},
                    "container": container('grep -qx "hello {{workflow.name}}" /mlops/in/data; id', image),
                },
                {
                    "name": "part",
                    "volumes": VOLUMES,
                    "inputs": {"parameters": [{"name": "item"}]},
                    "container": container(
                        'mkdir -p /tmp/out; echo "{{inputs.parameters.item}}" > /tmp/out/part.txt\n'
                        'printf %s "{{inputs.parameters.item}}" > /tmp/out/item\n'
                        'printf \'{"item": "%s"}\' "{{inputs.parameters.item}}" > /tmp/out/info',
                        image,
                    ),
                    "outputs": {
                        "parameters": [
                            {"name": "item", "valueFrom": {"path": "/tmp/out/item"}},
                            {"name": "info", "valueFrom": {"path": "/tmp/out/info"}},
                        ],
                        "artifacts": [
                            {
                                "name": "part",
                                "path": "/tmp/out/part.txt",
                                "archive": {"none": {}},
                                "s3": {"key": parts_key + "/{{pod.name}}.txt"},
                            }
                        ],
                    },
                },
                {
                    "name": "gather",
                    "volumes": VOLUMES,
                    "inputs": {
                        "parameters": [{"name": "items"}, {"name": "infos"}],
                        "artifacts": [{"name": "parts", "path": "/mlops/in/parts"}],
                    },
                    "container": container(
                        "echo 'items={{inputs.parameters.items}}'; echo 'infos={{inputs.parameters.infos}}'\n"
                        "ls -l /mlops/in/parts; cat /mlops/in/parts/*",
                        image,
                    ),
                },
            ],
        },
    }


def failing_workflow(image: str) -> dict:
    script = 'echo "bad input: column x is empty" > /dev/termination-log; echo "to stdout"; exit 3'
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "argo-fail-", "namespace": RUNS},
        "spec": {
            "entrypoint": "fail",
            "activeDeadlineSeconds": 600,
            "templates": [{"name": "fail", "volumes": VOLUMES, "container": container(script, image)}],
        },
    }


def submit(kube, workflow: dict) -> str:
    out = kube.run("create", "-o", "name", "-f", "-", input=json.dumps(workflow)).stdout.strip()
    return out.split("/", 1)[1]


def finished(kube, name: str) -> dict:
    def done():
        wf = kube.json("-n", RUNS, "get", "workflow", name)
        return wf if wf.get("status", {}).get("phase") in ("Succeeded", "Failed", "Error") else None

    return kube.wait_for(f"workflow {name} to finish", 900, done, interval=3)


def describe(kube, wf: dict) -> str:
    nodes = {n["displayName"]: (n["phase"], n.get("message", "")) for n in wf["status"].get("nodes", {}).values()}
    events = kube.run("-n", RUNS, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
    logs = kube.run("-n", "argo", "logs", "deployment/workflow-controller", "--tail=30", check=False).stdout
    return f"{wf['status'].get('message')}\n{json.dumps(nodes, indent=1)}\n{events}\n{logs}"


@pytest.fixture(scope="module")
def runs(argo):
    """Both Workflows submitted at once and waited for (name -> Workflow)."""
    image = images()["BASE_IMAGE"]
    (node_ip,) = [
        a["address"] for a in argo.json("get", "nodes")["items"][0]["status"]["addresses"] if a["type"] == "InternalIP"
    ]
    names = {"probe": submit(argo, probe_workflow(image, node_ip)), "fail": submit(argo, failing_workflow(image))}
    start = time.monotonic()
    done = {key: finished(argo, name) for key, name in names.items()}
    print(f"workflows {sorted(names.values())} finished in {time.monotonic() - start:.0f} s")
    return done


def pods_of(kube, workflow: str) -> list[dict]:
    return kube.json("-n", RUNS, "get", "pods", "-l", f"workflows.argoproj.io/workflow={workflow}")["items"]


def node(wf: dict, display_name: str) -> dict:
    (found,) = [n for n in wf["status"]["nodes"].values() if n["displayName"] == display_name]
    return found


def output_artifact(step: dict, name: str) -> dict:
    """One of a step's output artifacts (beside them: main-logs, the archived log)."""
    (found,) = [a for a in step["outputs"]["artifacts"] if a["name"] == name]
    return found


def artifacts_client():
    from minio import Minio

    pairs = dict(
        line.split("=", 1) for line in ROLE_ENV.read_text().splitlines() if line.strip() and not line.startswith("#")
    )
    return Minio(
        "127.0.0.1:9000", access_key=pairs["accesskey"].strip(), secret_key=pairs["secretkey"].strip(), secure=False
    )


def test_artifacts_pass_between_steps_through_minio(kube, runs):
    wf = runs["probe"]
    assert wf["status"]["phase"] == "Succeeded", describe(kube, wf)
    name = wf["metadata"]["name"]
    # produce's artifact: no key of its own, so the repository's keyFormat + <name>.tgz
    key = output_artifact(node(wf, "produce"), "data")["s3"]["key"]
    pods = {
        p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p["metadata"]["name"]
        for p in pods_of(kube, name)
    }
    assert key == f"argo/{RUNS}/{name}/{pods[node(wf, 'produce')['id']]}/data.tgz"
    client = artifacts_client()  # the artifacts role, from the host through the NodePort
    assert client.stat_object("mlpipeline", key).size > 0
    # every step's log is archived beside it (archiveLogs), listed as its artifact main-logs
    logs = [
        o.object_name
        for o in client.list_objects("mlpipeline", f"argo/{RUNS}/{name}/", recursive=True)
        if o.object_name.endswith("/main.log")
    ]
    assert len(logs) == 6, logs  # produce, consume, part x2, gather, netcheck
    assert output_artifact(node(wf, "consume"), "main-logs")["s3"]["key"] in logs
    consume_log = client.get_object("mlpipeline", [k for k in logs if pods[node(wf, "consume")["id"]] in k][0])
    try:
        assert "uid=10001" in consume_log.read().decode()
    finally:
        consume_log.close()


def test_pod_name_in_keys_aggregated_parameters_and_a_prefix_as_directory(kube, runs):
    wf = runs["probe"]
    assert wf["status"]["phase"] == "Succeeded", describe(kube, wf)
    name = wf["metadata"]["name"]
    pods = {
        p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p["metadata"]["name"]
        for p in pods_of(kube, name)
    }
    parts = [n for n in wf["status"]["nodes"].values() if n["displayName"].startswith("part(")]
    assert len(parts) == 2
    for part in parts:
        artifact = output_artifact(part, "part")
        assert artifact["s3"]["key"] == f"argo/{RUNS}/{name}/parts/{pods[part['id']]}.txt"  # {{pod.name}} resolved
    gather = node(wf, "gather")
    inputs = {p["name"]: p["value"] for p in gather["inputs"]["parameters"]}
    assert json.loads(inputs["items"]) == ["a", "b"]  # plain values: a JSON list of strings, in item order
    assert json.loads(inputs["infos"]) == [{"item": "a"}, {"item": "b"}]  # JSON objects: embedded
    log = kube.run("-n", RUNS, "logs", pods[gather["id"]], "-c", "main").stdout
    assert sorted(line for line in log.splitlines() if line in ("a", "b")) == ["a", "b"], log


def test_every_pod_was_admitted_under_restricted(kube, runs):
    labels = kube.json("get", "namespace", RUNS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    wf = runs["probe"]
    assert wf["status"]["phase"] == "Succeeded", describe(kube, wf)
    pods = pods_of(kube, wf["metadata"]["name"])
    assert len(pods) == 6
    for pod in pods:
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "mlops-workflow"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        containers = {c["name"]: c for c in spec["initContainers"] + spec["containers"]}
        assert set(containers) == {"init", "wait", "main"}
        for c in containers.values():
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
        executor = images_of(kube)
        assert containers["init"]["image"] == containers["wait"]["image"] == executor
    # the API server enforces it here: a privileged pod is refused
    bad = pod_manifest("psa-probe", RUNS, images()["BASE_IMAGE"], "true")
    bad["spec"]["securityContext"] = {}
    bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    rejected = kube.run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr, rejected.stderr


def test_workflow_pods_reach_only_dns_minio_and_the_api_server(kube, runs):
    """default-deny in mlops-runs: MinIO's S3 port and the API server (kind's node address,
    6443) are open to a workflow pod, the node's kubelet port is not."""
    wf = runs["probe"]
    assert wf["status"]["phase"] == "Succeeded", describe(kube, wf)
    pods = {
        p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p["metadata"]["name"]
        for p in pods_of(kube, wf["metadata"]["name"])
    }
    log = kube.run("-n", RUNS, "logs", pods[node(wf, "netcheck")["id"]], "-c", "main").stdout
    verdicts = dict(line.rsplit(" ", 1) for line in log.splitlines() if line.endswith(("OPEN", "CLOSED")))
    assert len(verdicts) == 3, log
    for target, verdict in verdicts.items():
        expected = "CLOSED" if target.endswith(":10250") else "OPEN"
        assert verdict == expected, (target, log)


def images_of(kube) -> str:
    dep = kube.json("-n", "argo", "get", "deployment", "workflow-controller")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    return env["ARGO_EXECUTOR_IMAGE"]


@pytest.mark.parametrize(
    "who, verb, resource, allowed",
    [
        (WORKFLOW_SA, "create", "workflowtaskresults.argoproj.io", True),
        (WORKFLOW_SA, "patch", "workflowtaskresults.argoproj.io", True),
        (WORKFLOW_SA, "get", "workflowtaskresults.argoproj.io", False),
        (WORKFLOW_SA, "list", "secrets", False),
        (WORKFLOW_SA, "get", "secrets", False),
        (WORKFLOW_SA, "create", "pods", False),
        (WORKFLOW_SA, "list", "pods", False),
        (WORKFLOW_SA, "create", "workflows.argoproj.io", False),
        (CONTROLLER_SA, "create", "pods", True),
        (CONTROLLER_SA, "get", "secrets", False),
        (CONTROLLER_SA, "list", "pods", True),
    ],
)
def test_identities_may_do_only_what_they_need(argo, who, verb, resource, allowed):
    proc = argo.run("auth", "can-i", verb, resource, "-n", RUNS, f"--as={who}", check=False)
    assert proc.stdout.strip() == ("yes" if allowed else "no"), (proc.stdout, proc.stderr)


def test_controller_cannot_act_outside_its_namespaces(argo):
    for namespace in ("default", "mlops-minio", "kube-system"):
        proc = argo.run("auth", "can-i", "create", "pods", "-n", namespace, f"--as={CONTROLLER_SA}", check=False)
        assert proc.stdout.strip() == "no", namespace


def test_a_failed_steps_termination_message_becomes_its_node_message(kube, runs):
    wf = runs["fail"]
    assert wf["status"]["phase"] == "Failed", describe(kube, wf)
    (step,) = [n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]
    print(f"node message {step['message']!r}, workflow message {wf['status'].get('message')!r}")
    assert step["message"].strip() == "main: Error (exit code 3): bad input: column x is empty", step
    # podGC OnWorkflowSuccess: a failed run keeps its pod, and its log
    pods = pods_of(kube, wf["metadata"]["name"])
    assert len(pods) == 1
    log = kube.run("-n", RUNS, "logs", pods[0]["metadata"]["name"], "-c", "main").stdout
    assert "to stdout" in log
