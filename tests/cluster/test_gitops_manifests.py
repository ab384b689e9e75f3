"""Offline checks of the GitOps path (docs/cluster.md, "GitOps with Flux"): what a
sync applies (manifests/gitops, the same for Flux and Argo CD), the platform side
on kind (manifests/base/flux, manifests/base/git-server, manifests/overlays/kind-gitops),
and the Flux build's pins. The live tests run it: tests/cluster_live/test_gitops.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops import config

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True}


def kustomize() -> str:
    path = REPO / ".tools" / "bin" / "kustomize"
    if not path.is_file():
        pytest.fail("kustomize not found in .tools: run `make tools`")
    return str(path)


def build(rel: str) -> list[dict]:
    proc = subprocess.run([kustomize(), "build", str(REPO / rel)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def synced() -> list[dict]:
    return build("manifests/gitops")


@pytest.fixture(scope="module")
def platform() -> list[dict]:
    return build("manifests/overlays/kind-gitops")


def containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_a_sync_holds_only_config_and_the_submit_job(synced):
    assert sorted(d["kind"] for d in synced) == ["ConfigMap", "ConfigMap", "Job"]
    # No namespace: Flux's targetNamespace (or Argo CD's destination) decides.
    assert all("namespace" not in d["metadata"] for d in synced)


def test_the_submit_job_serves_both_engines_and_keys_the_run_on_the_commit(synced):
    job = one(synced, "Job", "mlops-gitops-submit")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert annotations["kustomize.toolkit.fluxcd.io/force"] == "Enabled"  # re-created when its inputs change
    pod = job["spec"]["template"]["spec"]
    finder, submit = pod["initContainers"][0], pod["containers"][0]
    assert finder["image"] == config.GIT_IMAGE and submit["image"] == config.BASE_IMAGE
    assert finder["command"][-1].endswith("run_commit.py")
    assert finder["args"][2] == "/etc/mlops/run-params" and finder["args"][3] == "/run/mlops/commit"
    script = submit["args"][0]
    assert '--commit "$(cat /run/mlops/commit)"' in script and "mlops schedules sync" in script
    for c in (finder, submit):
        assert c["envFrom"] == [{"configMapRef": {"name": "mlops-gitops-settings"}}]
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # invalid parameters (exit 2) fail the Job at once; anything else is retried
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"] == {"operator": "In", "values": [2]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    generated = {d["metadata"]["name"] for d in synced if d["kind"] == "ConfigMap"}
    assert {volumes["run-params"]["configMap"]["name"], volumes["schedules"]["configMap"]["name"]} == generated
    # the run's inputs are exactly the run-params ConfigMap: what the commit finder compares
    params = next(d for d in synced if d["metadata"]["name"].startswith("mlops-run-params"))
    assert set(params["data"]) == {"run-params.yaml", "demo-wine.data.yaml"}


def test_every_pod_is_restricted(synced, platform):
    pods = [d["spec"]["template"]["spec"] for d in [*synced, *platform] if d["kind"] in ("Job", "Deployment")]
    assert len(pods) == 4  # the submit Job, two controllers, the Git server
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(pod):
            assert RESTRICTED.items() <= c["securityContext"].items(), c["name"]
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert c["resources"]["limits"]
    for ns in ("flux-system", "mlops-git"):
        labels = one(platform, "Namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_flux_has_no_cluster_wide_power(platform):
    assert not [d for d in platform if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for name in ("source-controller", "kustomize-controller"):
        args = one(platform, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--watch-all-namespaces=false" in args and "--enable-leader-election=false" in args
    args = one(platform, "Deployment", "kustomize-controller")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--default-service-account=mlops-gitops-applier" in args and "--no-remote-bases=true" in args
    role = one(platform, "Role", "kustomize-controller")
    impersonate = [r for r in role["rules"] if "impersonate" in r["verbs"]]
    assert impersonate == [
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "resourceNames": ["mlops-gitops-applier"],
            "verbs": ["impersonate"],
        }
    ]
    for r in role["rules"]:
        assert {"create", "delete"}.isdisjoint(r["verbs"]) or r["resources"] == ["events"], r


def test_the_applier_may_touch_only_what_a_sync_holds(synced, platform):
    kustomization = one(platform, "Kustomization", "mlops-gitops")["spec"]
    assert kustomization["serviceAccountName"] == "mlops-gitops-applier"
    assert kustomization["targetNamespace"] == config.ARGO_NAMESPACE
    assert kustomization["prune"] is True and kustomization["wait"] is True
    assert (REPO / kustomization["path"] / "kustomization.yaml").is_file()
    role = one(platform, "Role", "mlops-gitops-applier")
    assert role["metadata"]["namespace"] == config.ARGO_NAMESPACE
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    plural = {"ConfigMap": ("", "configmaps"), "Job": ("batch", "jobs")}
    assert granted == {plural[d["kind"]] for d in synced}
    binding = one(platform, "RoleBinding", "mlops-gitops-applier")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlops-gitops-applier", "namespace": "flux-system"}
    ]


def test_the_submitter_may_only_start_runs_and_sync_schedules(platform):
    rules = one(platform, "Role", "mlops-submitter")["rules"]
    assert {r for rule in rules for r in rule["resources"]} == {"workflowtemplates", "workflows", "cronworkflows"}
    workflows = next(rule for rule in rules if rule["resources"] == ["workflows"])
    assert "delete" not in workflows["verbs"] and "update" not in workflows["verbs"]
    settings = one(platform, "ConfigMap", "mlops-gitops-settings")["data"]
    source = one(platform, "GitRepository", "mlops-gitops")["spec"]["url"]
    assert settings == {"MLOPS_ENGINE": "argo", "MLOPS_GITOPS_REPO": source, "MLOPS_GITOPS_PATH": "manifests/gitops"}


def test_network_policies_allow_only_the_gitops_paths(platform):
    policies = [d for d in platform if d["kind"] == "NetworkPolicy"]
    denies = {
        d["metadata"]["namespace"]
        for d in policies
        if d["spec"]["podSelector"] == {} and "ingress" not in d["spec"] and "egress" not in d["spec"]
    }
    assert "flux-system" in denies
    git = one(platform, "NetworkPolicy", "git-server")["spec"]
    assert git["policyTypes"] == ["Ingress", "Egress"] and "egress" not in git  # it connects nowhere
    allowed = {
        (
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            p["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        )
        for p in git["ingress"][0]["from"]
    }
    assert allowed == {("flux-system", "source-controller"), (config.ARGO_NAMESPACE, "mlops-gitops-submit")}
    source = one(platform, "NetworkPolicy", "source-controller")["spec"]
    assert source["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "kustomize-controller"}}}
    ]


def test_the_git_server_keeps_its_repositories_and_needs_a_password_to_push(platform):
    deploy = one(platform, "Deployment", "git-server")["spec"]["template"]["spec"]
    assert deploy["containers"][0]["image"] == config.GIT_IMAGE
    assert deploy["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in deploy["volumes"]}
    assert volumes["repositories"]["persistentVolumeClaim"]["claimName"] == "git-repositories"
    assert volumes["credentials"]["secret"]["secretName"] == "git-push-credentials"  # made by gitops-up, not in git
    assert not [d for d in platform if d["kind"] == "Secret"]


def test_flux_is_built_from_the_pinned_modules():
    versions = (REPO / "scripts/flux/build.sh").read_text()
    version = re.search(r"^FLUX_CONTROLLERS_VERSION=(\S+)", versions, re.M).group(1)
    gomod = (REPO / "scripts/flux/wrapper/go.mod").read_text()
    for module in ("source-controller", "kustomize-controller"):
        assert re.search(rf"github.com/fluxcd/{module} {re.escape(version)}\b", gomod), module
    assert "github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.0" in gomod
    assert (REPO / "scripts/flux/wrapper/go.sum").is_file()
