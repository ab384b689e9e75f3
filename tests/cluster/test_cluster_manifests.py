"""Offline proof of the cluster artifacts: kustomize builds, strict Kubernetes
schema validation, checks of our custom resources, and agreement between
mlops/config.py, the Dockerfiles, the Makefile, the manifests and
pipelines/cluster.py.

kustomize and checkov come from .tools (`make tools`). Without them these tests
skip, except under CI=true, where a missing tool fails them.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mlops import config as cluster
from mlops.cluster import kfp_client
from mlops.cluster import schedules as schedule_sync
from mlops.store import roles
from pipelines import compile as compiling
from pipelines import task_settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMAGES = {
    name: getattr(cluster, name)
    for name in ("IMAGE_VERSION", "REGISTRY", "BASE_IMAGE", "TFDV_IMAGE", "MINIO_IMAGE", "GIT_IMAGE")
}
OUR_IMAGES = {IMAGES["BASE_IMAGE"], IMAGES["TFDV_IMAGE"], IMAGES["MINIO_IMAGE"], IMAGES["GIT_IMAGE"]}
# kind v0.32's default node and the newest schema kubernetes-validate ships with.
KUBE_VERSIONS = ["1.33.0", "1.36.0"]
KFP_VERSION = "2.17.0"
IN_CI = os.environ.get("CI", "").lower() == "true"


def tool(name: str) -> str:
    """Path of a tool from .tools, or skip (fail under CI=true)."""
    for candidate in (REPO / ".tools" / "bin" / name, REPO / ".tools" / "venv" / "bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    message = f"{name} not found in .tools: run `make tools`"
    if IN_CI:
        pytest.fail(message + " (CI=true: the tool must be present)")
    pytest.skip(message)


def load_all(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def images_in(obj) -> set[str]:
    found = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "image" and isinstance(v, str):
                found.add(v)
            else:
                found |= images_in(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= images_in(v)
    return found


# -- an offline copy of the tree ------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """manifests/ and schedules/ as on a fresh clone, made buildable offline:
    fresh credentials from `make secrets`, and the two remote KFP bases replaced by local
    stand-ins (tests/cluster/fixtures) with the objects our Component patches."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(MANIFESTS, root / "manifests")
    shutil.copytree(REPO / "schedules", root / "schedules")
    overlay = root / "manifests" / "overlays" / "kind"
    for env in overlay.glob("*.env"):
        env.unlink()
    subprocess.run(["bash", str(REPO / "scripts" / "gen-secrets.sh"), str(overlay)], check=True, capture_output=True)
    upstream = root / "manifests" / "base" / "kfp-upstream"
    shutil.rmtree(upstream)
    shutil.copytree(FIXTURES / "kfp-upstream-stub", upstream)
    scoped = root / "manifests" / "base" / "kfp-cluster-scoped"
    shutil.rmtree(scoped)
    scoped.mkdir()
    ours = yaml.safe_load((MANIFESTS / "base" / "kfp-cluster-scoped" / "kustomization.yaml").read_text())
    (scoped / "kustomization.yaml").write_text(yaml.safe_dump({**ours, "resources": ["namespace.yaml"]}))
    (scoped / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubeflow\n")
    return root


def kustomize_dirs() -> list[str]:
    """Every kustomization root in the repo that builds on its own (not Components)."""
    dirs = []
    for k in sorted([*MANIFESTS.rglob("kustomization.yaml"), REPO / "schedules" / "kustomization.yaml"]):
        if yaml.safe_load(k.read_text()).get("kind") == "Component":
            continue
        dirs.append(str(k.parent.relative_to(REPO)))
    return dirs


BUILD_TIMES: dict[str, float] = {}


def build(tree: Path, rel: str) -> list[dict]:
    kustomize = tool("kustomize")
    start = time.perf_counter()
    proc = subprocess.run([kustomize, "build", str(tree / rel)], capture_output=True, text=True, timeout=120)
    BUILD_TIMES[rel] = time.perf_counter() - start
    assert proc.returncode == 0, f"kustomize build {rel} failed:\n{proc.stderr}"
    return load_all(proc.stdout)


@pytest.mark.parametrize("rel", kustomize_dirs())
def test_kustomize_build(tree, rel):
    docs = build(tree, rel)
    assert docs, f"{rel} rendered nothing"


@pytest.fixture(scope="module")
def kind_overlay(tree) -> list[dict]:
    return build(tree, "manifests/overlays/kind")


@pytest.fixture(scope="module")
def gitops(tree) -> list[dict]:
    return build(tree, "manifests/gitops")


def plain_manifest_docs() -> list[tuple[str, dict]]:
    """Kubernetes objects in files that are applied as they are (not through a build)."""
    out = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        rel = str(path.relative_to(REPO))
        if (
            path.name in ("kustomization.yaml", "run-params.yaml")
            or path.name.endswith(".data.yaml")
            or "/base/kfp/" in rel
            or "argocd" in rel
            or rel.endswith("nodeports.yaml")
        ):
            continue  # kustomizations, data, patches; the CR is checked separately
        for doc in load_all(path.read_text()):
            if str(doc.get("apiVersion", "")).startswith("argoproj.io/") or ".toolkit.fluxcd.io/" in str(
                doc.get("apiVersion", "")
            ):
                # Argo's and Flux's kinds have no schema here: the live tests create them on the
                # real API server with their CRDs (tests/cluster_live/test_argo_pipeline.py,
                # test_gitops.py).
                continue
            out.append((rel, doc))
    return out


def _validate(doc: dict, version: str):
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_plain_manifests_validate_strict(version):
    docs = plain_manifest_docs()
    assert len(docs) >= 10
    for rel, doc in docs:
        try:
            _validate(doc, version)
        except Exception as err:  # noqa: BLE001 - report which file
            pytest.fail(f"{rel} {doc.get('kind')}/{doc['metadata'].get('name')}: {err}")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_rendered_overlays_validate_strict(kind_overlay, gitops, version):
    for doc in [*kind_overlay, *gitops]:
        try:
            _validate(doc, version)
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"{doc.get('kind')}/{doc['metadata'].get('name')}: {err}")


def test_strict_validation_catches_typos():
    # negative control: strict mode rejects an unknown field
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}], "selectr": {"a": "b"}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad, KUBE_VERSIONS[0])


# -- what the kind overlay must contain ------------------------------------------


def by_kind(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert found, f"no {kind} {name}"
    return found[0]


def test_kind_overlay_points_kfp_at_our_minio(kind_overlay):
    docs = kind_overlay
    assert not [d for d in docs if "seaweedfs" in d["metadata"]["name"]], "SeaweedFS left in"
    host = cluster.MINIO_ENDPOINT.split("//")[1]
    launcher = by_kind(docs, "ConfigMap", "kfp-launcher")["data"]
    assert launcher["defaultPipelineRoot"] == "minio://mlpipeline/v2/artifacts"
    providers = yaml.safe_load(launcher["providers"])["minio"]["default"]
    assert providers["endpoint"] == host
    ref = providers["credentials"]["secretRef"]
    assert ref == {"secretName": cluster.MINIO_SECRET_NAME, "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}
    api = by_kind(docs, "Deployment", "ml-pipeline")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert f"{env['OBJECTSTORECONFIG_HOST']}:{env['OBJECTSTORECONFIG_PORT']}" == host
    ui = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ml-pipeline-ui"]
    ui_env = {e["name"]: e for e in ui[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "valueFrom" not in ui_env["MINIO_NAMESPACE"]
    assert (
        f"{ui_env['MINIO_HOST']['value']}.{ui_env['MINIO_NAMESPACE']['value']}"
        == f"{cluster.MINIO_SERVICE}.{cluster.MINIO_NAMESPACE}"
    )
    argo = yaml.safe_load(by_kind(docs, "ConfigMap", "workflow-controller-configmap")["data"]["artifactRepository"])
    assert argo["s3"]["endpoint"] == host and argo["s3"]["bucket"] == "mlpipeline"
    secret = by_kind(docs, "Secret", cluster.MINIO_SECRET_NAME)
    assert secret["metadata"]["name"] == cluster.MINIO_SECRET_NAME  # no hash suffix
    assert secret["metadata"]["namespace"] == cluster.KFP_NAMESPACE
    assert set(secret["data"]) == set(cluster.MINIO_SECRET_KEY_TO_ENV)
    # KFP holds the artifacts role's credential (the user the bucket Job creates), never root's.
    assert by_kind(docs, "Secret", "minio-role-artifacts")["data"] == secret["data"]
    assert by_kind(docs, "Secret", "minio-credentials")["data"] != secret["data"]


def test_minio_deployment_hardening(kind_overlay):
    dep = by_kind(kind_overlay, "Deployment", "minio")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == IMAGES["MINIO_IMAGE"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(c["resources"])
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    generated = by_kind(kind_overlay, "Secret", "minio-credentials")["metadata"]["name"]
    assert secret_refs == {generated}  # kustomize rewrote the hashed name
    pol = by_kind(kind_overlay, "NetworkPolicy", "minio")
    sources = [f for rule in pol["spec"]["ingress"] for f in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.KFP_NAMESPACE}}} in sources
    assert all("ipBlock" not in f for f in sources)  # host access is kind-only, separate
    job = by_kind(kind_overlay, "Job", "minio-buckets")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert f"local/{cluster.STORE_BUCKET}" in script and "local/mlpipeline" in script
    assert re.search(r"until timeout \d+ mc ready", script)  # a first unbounded `mc ready` can hang
    assert "$$" not in script  # Kubernetes turns "$$" in args into "$"


ALL_ROLES = (*roles.ROLES, roles.ARTIFACTS_ROLE)


def test_only_minio_and_the_bootstrap_job_hold_the_root_credential(kind_overlay):
    root = by_kind(kind_overlay, "Secret", "minio-credentials")["metadata"]["name"]
    users = {
        (d["kind"], d["metadata"]["name"])
        for d in kind_overlay
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob") and root in json.dumps(d)
    }
    assert users == {("Deployment", "minio"), ("Job", "minio-buckets")}
    assert root.startswith("minio-credentials-")  # hashed: a new value rolls MinIO


def test_bucket_job_creates_every_role_with_the_policy_of_roles_py(kind_overlay):
    """The Job's role loop, its Secrets and its policy files agree with mlops/store/roles.py."""
    job = by_kind(kind_overlay, "Job", "minio-buckets")["spec"]["template"]["spec"]
    container = job["containers"][0]
    script = container["args"][0]
    assert set(re.search(r"for role in ([\w ]+); do", script).group(1).split()) == set(ALL_ROLES)
    assert "mlops-$role" in script and roles.policy_name("x") == "mlops-x"
    prefixes = {e["prefix"].rstrip("_"): e["secretRef"]["name"] for e in container["envFrom"]}
    assert set(prefixes) == set(ALL_ROLES)
    generated = {d["metadata"]["name"]: d for d in kind_overlay if d["kind"] == "Secret"}
    for role, name in prefixes.items():
        assert name in generated and name.startswith(f"minio-role-{role}-"), (role, name)
    policies_cm = next(v["configMap"]["name"] for v in job["volumes"] if v["name"] == "policies")
    files = by_kind(kind_overlay, "ConfigMap", policies_cm)["data"]
    assert {name: json.loads(text) for name, text in files.items()} == {
        f"{role}.json": document for role, document in roles.policies().items()
    }
    # the pipeline tasks' Secrets in kubeflow carry the same keys as the users the Job creates
    for role in ("pipeline", "registry"):
        in_kubeflow = generated[cluster.ROLE_SECRET_NAMES[role]]
        assert in_kubeflow["metadata"]["namespace"] == cluster.KFP_NAMESPACE
        assert in_kubeflow["data"] == generated[prefixes[role]]["data"]
    values = {generated[prefixes[role]]["data"]["accesskey"] for role in ALL_ROLES}
    assert len(values) == len(ALL_ROLES)  # one user per role


def test_every_secret_a_compiled_spec_names_is_generated_under_that_name(kind_overlay):
    generated = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in kind_overlay if d["kind"] == "Secret"}
    for name in ("training_pipeline.yaml", "monitor_pipeline.yaml"):
        documents = list(yaml.safe_load_all((compiling.COMPILED_DIR / name).read_text()))
        for executor in documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            for ref in executor.get("secretAsEnv", []):
                if ref.get("optional"):
                    continue  # mlops-data-source: only where a data URI carries a credential
                assert (cluster.KFP_NAMESPACE, ref["secretName"]) in generated, ref["secretName"]


def test_minio_console_is_off(kind_overlay):
    dep = by_kind(kind_overlay, "Deployment", "minio")["spec"]["template"]["spec"]["containers"][0]
    assert "--console-address" not in dep["args"]
    assert {"name": "MINIO_BROWSER", "value": "off"} in dep["env"]
    assert [p["containerPort"] for p in dep["ports"]] == [9000]
    service = by_kind(kind_overlay, "Service", "minio")
    assert [p["port"] for p in service["spec"]["ports"]] == [9000]
    kind_cfg = (REPO / "kind-config.yaml").read_text()
    assert "9001" not in kind_cfg


def test_pipeline_pods_have_egress_only_to_what_they_need(kind_overlay):
    """Selected by KFP's v2 pod label; DNS, MinIO, the KFP API and metadata, and (kind) the API server."""
    policies = [
        d
        for d in kind_overlay
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"].get("matchLabels") == {"pipelines.kubeflow.org/v2_component": "true"}
    ]
    assert {d["metadata"]["name"] for d in policies} == {"pipeline-egress", "pipeline-egress-kube-api"}
    peers = []
    for policy in policies:
        assert policy["metadata"]["namespace"] == cluster.KFP_NAMESPACE
        assert policy["spec"]["policyTypes"] == ["Egress"]
        for rule in policy["spec"]["egress"]:
            assert rule["ports"], policy["metadata"]["name"]  # never all ports
            for peer in rule["to"]:
                peers.append((json.dumps(peer, sort_keys=True), sorted(p["port"] for p in rule["ports"])))
    blocks = [json.loads(peer)["ipBlock"]["cidr"] for peer, _ in peers if "ipBlock" in peer]
    assert blocks == ["172.16.0.0/12"]  # kind's node network, for the API server only
    minio = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.MINIO_NAMESPACE}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "minio"}},
    }
    assert (json.dumps(minio, sort_keys=True), [9000]) in peers
    # The KFP API (unauthenticated in standalone KFP): only the gRPC port KFP's driver and launcher
    # use (--ml_pipeline_server_port, 8887), never the HTTP API (8888) that no pipeline pod needs.
    kfp_api = [
        ports for peer, ports in peers if json.loads(peer).get("podSelector") == {"matchLabels": {"app": "ml-pipeline"}}
    ]
    assert kfp_api == [[8887]]
    assert all(8888 not in ports for _, ports in peers)


def test_workflow_defaults_make_every_main_container_read_only(kind_overlay):
    """Shape only (KFP does not run here): a read-only root with writable /tmp and launcher paths."""
    data = by_kind(kind_overlay, "ConfigMap", "workflow-controller-configmap")["data"]
    patch = yaml.safe_load(yaml.safe_load(data["workflowDefaults"])["spec"]["podSpecPatch"])
    main = patch["containers"][0]
    assert main["name"] == "main" and main["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/minio", "/s3", "/gcs"}
    volumes = {v["name"]: v for v in patch["volumes"]}
    assert set(mounts.values()) == set(volumes) and all("emptyDir" in v for v in volumes.values())
    # the same volume name as apply_task_settings' /tmp, so KFP's own pod-spec-patch merges with it
    spec = list(yaml.safe_load_all((compiling.COMPILED_DIR / "training_pipeline.yaml").read_text()))[1]
    executor = next(iter(spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()))
    assert [(m["volumeName"], m["mountPath"]) for m in executor["emptyDirMounts"]] == [(mounts["/tmp"], "/tmp")]


def test_pipeline_pods_are_restricted_in_a_restricted_namespace(tree, kind_overlay):
    """Shape only (KFP does not run here): the kubeflow namespace enforces Pod Security "restricted", and
    the controller gives every pipeline pod, its main container and Argo's executor what that needs
    (kfp-kubernetes can set only the user fields; pipelines/task_settings.py sets those)."""
    namespace = by_kind(build(tree, "manifests/base/kfp-cluster-scoped"), "Namespace", "kubeflow")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    data = by_kind(kind_overlay, "ConfigMap", "workflow-controller-configmap")["data"]
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
    }
    defaults = yaml.safe_load(data["workflowDefaults"])["spec"]
    patch = yaml.safe_load(defaults["podSpecPatch"])
    for pod in (defaults["securityContext"], patch["securityContext"]):
        assert pod == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in (patch["containers"][0]["securityContext"], yaml.safe_load(data["executor"])["securityContext"]):
        assert restricted.items() <= container.items()
    spec = list(yaml.safe_load_all((compiling.COMPILED_DIR / "training_pipeline.yaml").read_text()))[1]
    for executor in spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert executor["securityContext"]["runAsNonRoot"] is True


def test_nodeports_match_kind_config(kind_overlay):
    kind_cfg = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mapped = {m["containerPort"]: m for n in kind_cfg["nodes"] for m in n.get("extraPortMappings", [])}
    assert all(m["listenAddress"] == "127.0.0.1" for m in mapped.values())
    node_ports = {
        p["nodePort"] for d in kind_overlay if d["kind"] == "Service" for p in d["spec"]["ports"] if "nodePort" in p
    }
    assert node_ports == set(mapped)
    assert {mapped[30080]["hostPort"], mapped[30888]["hostPort"]} == {8080, 8888}
    assert "config_path" in kind_cfg["containerdConfigPatches"][0]


def test_kfp_release_is_pinned_everywhere():
    mk = (REPO / "mk" / "cluster.mk").read_text()
    assert re.search(rf"^KFP_VERSION := {re.escape(KFP_VERSION)}$", mk, re.M)
    for base in ("kfp-upstream", "kfp-cluster-scoped"):
        text = (MANIFESTS / "base" / base / "kustomization.yaml").read_text()
        refs = re.findall(r"github\.com/kubeflow/pipelines//\S+\?ref=([^&\s]+)", text)
        assert refs == [KFP_VERSION], (base, refs)


# -- our custom resources --------------------------------------------------------


def test_argocd_application():
    app = yaml.safe_load((MANIFESTS / "argocd" / "application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["metadata"]["namespace"] == "argocd"
    spec = app["spec"]
    assert {"project", "source", "destination"} <= set(spec)
    assert (REPO / spec["source"]["path"] / "kustomization.yaml").is_file()
    assert spec["source"]["repoURL"].endswith(".git")
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": cluster.KFP_NAMESPACE}


def test_submit_run_job_is_a_new_run_per_create():
    job = yaml.safe_load((MANIFESTS / "runs" / "submit-run.yaml").read_text())
    assert "generateName" in job["metadata"] and "name" not in job["metadata"]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["mlops", "submit"]
    assert "--key=$(JOB_NAME)" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    assert "job-name" in env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_kubernetes_native_pipeline_version(tmp_path):
    """compile_kubernetes_native gives a Pipeline + PipelineVersion pair that a KFP
    API server in Kubernetes mode accepts (fields of pipelines.kubeflow.org_
    pipelineversions.yaml at 2.17.0: spec.pipelineName, spec.pipelineSpec)."""
    from pipelines.training import training_pipeline

    path = compiling.compile_kubernetes_native(training_pipeline, tmp_path, version_name="v1")
    docs = load_all(path.read_text())
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    pipe, ver = docs
    for d in docs:
        assert d["apiVersion"] == "pipelines.kubeflow.org/v2beta1"
        assert d["metadata"]["namespace"] == cluster.KFP_NAMESPACE
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])
    assert ver["metadata"]["name"] == "v1"
    assert ver["spec"]["pipelineName"] == pipe["metadata"]["name"]
    assert {"pipelineInfo", "root", "deploymentSpec"} <= set(ver["spec"]["pipelineSpec"])
    assert images_in(ver) <= OUR_IMAGES
    # every executor gets its role's Secret ref (register alone the registry role's)
    executors = ver["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        role = "registry" if name == "exec-register" else "pipeline"
        assert executor["secretAsEnv"][0]["secretName"] == cluster.ROLE_SECRET_NAMES[role], name


# -- one source of image names ---------------------------------------------------


def test_manifests_use_only_images_from_images_py():
    used = set()
    for path in MANIFESTS.rglob("*.yaml"):
        if "/base/kfp" in str(path):
            continue
        for doc in load_all(path.read_text()):
            used |= images_in(doc)
    # Flux's controllers: names that scripts/gitops/up.sh replaces with the built refs
    # (their tags hash the build inputs, like Argo's, which the manifests leave out).
    used -= {"mlops-flux-source-controller", "mlops-flux-kustomize-controller"}
    assert used and used <= OUR_IMAGES, used - OUR_IMAGES


def test_makefile_and_dockerfiles_agree_with_images_py():
    out = subprocess.run(
        ["python3", str(REPO / "scripts" / "images.py")], capture_output=True, text=True, check=True
    ).stdout
    assert dict(line.split("=", 1) for line in out.split()) == {
        k: IMAGES[k] for k in ("IMAGE_VERSION", "REGISTRY", "BASE_IMAGE", "TFDV_IMAGE", "MINIO_IMAGE", "GIT_IMAGE")
    }
    # make images builds the names scripts/images.py prints (tests/test_images.py runs it);
    # here: no Makefile fragment hard-codes a tag of its own.
    tfdv = (REPO / "images" / "Dockerfile.tfdv").read_text()
    assert f"ARG BASE_IMAGE={IMAGES['BASE_IMAGE']}" in tfdv
    for mk in (REPO / "mk").glob("*.mk"):
        assert re.search(r"localhost:5001/\S+:\S+", mk.read_text()) is None, mk.name


def test_compiled_spec_references_exactly_these_images():
    spec_path = REPO / "pipelines" / "compiled" / "training_pipeline.yaml"
    if not spec_path.is_file():
        pytest.skip("pipelines/compiled/training_pipeline.yaml not compiled yet")
    spec = next(yaml.safe_load_all(spec_path.read_text()))
    used = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert used <= OUR_IMAGES and IMAGES["TFDV_IMAGE"] in used and IMAGES["BASE_IMAGE"] in used


# -- Dockerfiles -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Dockerfile.base", "Dockerfile.tfdv", "Dockerfile.minio"])
def test_dockerfile_rules(name):
    text = (REPO / "images" / name).read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2, "multi-stage: build tools stay in the builder"
    for stage in stages:
        ref = stage.split()[0]
        ref = args.get(ref[2:-1], ref) if ref.startswith("${") else ref
        if ref == IMAGES["BASE_IMAGE"]:
            continue
        # exact release tag (python 3.11.14, golang 1.26.8, debian point release 12.12), or a digest
        assert "@sha256:" in ref or re.search(r":\d+\.\d+(\.\d+)?-", ref), ref
    final = stages[-1]
    assert "apt-get install" not in final and "gcc" not in final
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users and not users[-1].startswith(("root", "0")), users
    for label in ("org.opencontainers.image.source", "org.opencontainers.image.version"):
        assert label in final


def test_run_as_user_matches_images():
    base = (REPO / "images" / "Dockerfile.base").read_text()
    assert f"--uid {cluster.RUN_AS_USER}" in base and f"--gid {cluster.RUN_AS_GROUP}" in base
    assert f"USER {cluster.RUN_AS_USER}:{cluster.RUN_AS_GROUP}" in base


# -- task settings -------------------------------------------------------------------


def test_apply_task_settings_compiles_to_refs_not_values(tmp_path):
    from kfp import compiler, dsl

    @dsl.component(base_image=IMAGES["BASE_IMAGE"], install_kfp_package=False)
    def step(x: int) -> int:
        return x

    @dsl.pipeline(name="settings-demo")
    def demo(x: int = 1):
        task_settings.apply_task_settings(step(x=x), memory_limit="3Gi")

    out = tmp_path / "demo.yaml"
    compiler.Compiler().compile(demo, str(out))
    spec, platform = load_all(out.read_text())
    container = spec["deploymentSpec"]["executors"]["exec-step"]["container"]
    assert container["resources"]["resourceMemoryLimit"] == "3Gi"
    assert container["resources"]["resourceCpuRequest"] == "250m"
    assert "env" not in container  # kfp.local would apply container env to local runs
    ex = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-step"]
    assert ex["configMapAsEnv"][0]["configMapName"] == cluster.STORE_CONFIG_MAP_NAME
    assert {k["envVar"] for k in ex["configMapAsEnv"][0]["keyToEnv"]} == set(cluster.STORE_CONFIG_MAP_KEYS)
    assert ex["secretAsEnv"][0]["secretName"] == cluster.ROLE_SECRET_NAMES["pipeline"]
    assert {k["envVar"] for k in ex["secretAsEnv"][0]["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert ex["emptyDirMounts"][0]["mountPath"] == "/tmp"
    assert ex["securityContext"]["runAsNonRoot"] is True
    assert "CHANGE_ME" not in out.read_text()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"cpu_request": "lots"}, "'cpu_request' parameter"),
        ({"memory_limit": 2048}, "'memory_limit' parameter"),
    ],
)
def test_apply_task_settings_rejects_bad_quantities(kwargs, message):
    with pytest.raises(ValueError, match=message):
        task_settings.apply_task_settings(object(), **kwargs)


# -- schedules and secrets --------------------------------------------------------------


def test_schedules_in_git_are_valid_and_packed():
    schedules = schedule_sync.load_schedules(REPO / "schedules")
    assert schedules
    kz = yaml.safe_load((REPO / "schedules" / "kustomization.yaml").read_text())
    packed = set(kz["configMapGenerator"][0]["files"])
    files = {p.name for p in (REPO / "schedules").glob("*.yaml")} - {"kustomization.yaml"}
    assert packed == files, "list every schedule file in schedules/kustomization.yaml"
    assert {s.pipeline for s in schedules} == {"training", "monitor"}
    for s in schedules:
        kfp_client.coerce_params(kfp_client.packaged_spec(schedule_sync.PIPELINES[s.pipeline][0]), s.params)
    kfp_client.coerce_params(
        kfp_client.packaged_spec(), yaml.safe_load((MANIFESTS / "gitops" / "run-params.yaml").read_text())
    )


def test_no_secret_files_tracked():
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert not [t for t in tracked if t.endswith(".env")], "an .env file is not git-ignored"
    for example in ("minio.env.example", "role.env.example"):
        assert "CHANGE_ME" in (MANIFESTS / "overlays" / "kind" / example).read_text()


def test_gen_secrets_writes_one_urlsafe_credential_per_user_once(tmp_path):
    script = str(REPO / "scripts" / "gen-secrets.sh")
    subprocess.run(["bash", script, str(tmp_path)], check=True, capture_output=True)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(["minio.env", *(f"role-{role}.env" for role in ALL_ROLES)])
    first = {name: (tmp_path / name).read_text() for name in files}
    seen = set()
    for name, text in first.items():
        values = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
        assert set(values) == {"accesskey", "secretkey"}
        assert all(re.fullmatch(r"[A-Za-z0-9]{8,}", v) for v in values.values())
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600"
        seen |= set(values.values())
    assert len(seen) == 2 * len(files)  # nothing shared between users
    out = subprocess.run(["bash", script, str(tmp_path)], check=True, capture_output=True, text=True).stdout
    assert {name: (tmp_path / name).read_text() for name in files} == first  # kept, not regenerated
    assert "=" not in out  # never prints a value


CHECKOV_ARGS = [
    "--quiet",
    "--compact",
    "--skip-download",
    "--framework",
    "kubernetes",
    "dockerfile",
    "github_actions",
    "-d",
    str(MANIFESTS),
    "-d",
    str(REPO / "images"),
    "-d",
    str(REPO / ".github" / "workflows"),
    "--skip-path",
    "manifests/base/kfp/",
]


# -- checkov -------------------------------------------------------------------------------


def test_checkov_passes():
    """Our manifests, Dockerfiles and workflow; base/kfp holds patches of upstream
    objects (partial by nature), so it is not scanned as whole resources."""
    checkov = tool("checkov")
    cmd = [checkov, *CHECKOV_ARGS, "--output", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    reports, text, pos = [], proc.stdout.strip(), 0
    decoder = json.JSONDecoder()
    while pos < len(text):  # one JSON document per -d directory
        doc, end = decoder.raw_decode(text, pos)
        reports += doc if isinstance(doc, list) else [doc]
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    failed = [
        (r.get("check_type"), c["check_id"], c.get("file_path"), c.get("resource"))
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], failed
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    skipped = sum(r.get("summary", {}).get("skipped", 0) for r in reports)
    print(f"checkov: {passed} passed, {skipped} skipped (each justified inline)")


def test_store_config_map_matches_the_code():
    """Tasks read the store's place and the ingest allow-list from this ConfigMap (apply_task_settings)."""
    from mlops.data.source_policy import SourcePolicy

    config_map = yaml.safe_load((REPO / "manifests/base/kfp/mlops-store-config.yaml").read_text())
    assert config_map["metadata"] == {"name": cluster.STORE_CONFIG_MAP_NAME, "namespace": cluster.KFP_NAMESPACE}
    assert set(config_map["data"]) == set(cluster.STORE_CONFIG_MAP_KEYS)
    assert config_map["data"]["AWS_ENDPOINT_URL"] == cluster.MINIO_ENDPOINT
    assert config_map["data"]["MLOPS_STORE"] == cluster.CLUSTER_STORE_URI
    policy = SourcePolicy(tuple(config_map["data"]["MLOPS_INGEST_ALLOW"].split(",")))
    assert not policy.open  # on a cluster ingest reads only what is listed
