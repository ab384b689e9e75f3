"""GitOps on the kind cluster: Flux (built here) syncs the in-cluster Git server's
repository, and a commit that changes the run's inputs starts exactly one Argo run.

The module brings the GitOps path up the way a user does (`make gitops-up`, after
`make deploy-argo`, which scripts/kind/test-cluster.sh ran) and pushes with
`make gitops-push` from a copy of the GitOps folder that each case edits. The cases
run in order, each from the state the previous one left: an invalid parameter
(no run, the reason in the status), a parameter change (one run, Succeeded), the
same content again and a forced reconcile (none), a commit that changes nothing a
run reads (none), a schedule change (the CronWorkflow follows, no run). Every wait
is bounded. The push-to-start times go to bench/cluster.md (median of 3: the seed
and the two pushes that start a run here and in tests of the same kind).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from live_cluster import CLUSTER, CONTEXT, REPO

pytestmark = pytest.mark.cluster

NAMESPACE = "mlops-runs"
MLOPS = str(Path(sys.executable).with_name("mlops"))
SYNC_TIMEOUT = 300  # a push until Flux applied it and the Job finished
RUN_TIMEOUT = 1500
PUSH_TO_START: list[float] = []


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def make(*args: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["make", "--no-print-directory", *args, f"KIND_CLUSTER={CLUSTER}", f"KUBE_CONTEXT={CONTEXT}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


class GitOps:
    """The GitOps folder's copy that the cases edit, and what they read back."""

    def __init__(self, kube, source: Path, workdir: Path):
        self.kube, self.source, self.workdir = kube, source, workdir

    def push(self, message: str) -> tuple[str, str, float]:
        """make gitops-push; (pushed|unchanged, the head commit, when the push was done)."""
        out = make(
            "gitops-push",
            f"MESSAGE={message}",
            env={"GITOPS_SOURCE": str(self.source), "GITOPS_DIR": str(self.workdir)},
        ).stdout
        state, commit = re.findall(r"^(pushed|unchanged) ([0-9a-f]{40})$", out, re.M)[-1]
        return state, commit, time.time()

    def edit(self, relative: str, change) -> None:
        path = self.source / relative
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def kustomization(self) -> dict:
        return self.kube.json("-n", "flux-system", "get", "kustomization", "mlops-gitops")

    def applied(self, commit: str) -> dict | None:
        """The Kustomization once it applied (or failed on) this commit and is done waiting."""
        k = self.kustomization()
        status = k.get("status", {})
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        attempted = status.get("lastAttemptedRevision", "")
        if (
            attempted.endswith(commit)
            and ready.get("status") in ("True", "False")
            and ready.get("reason") != "Progressing"
        ):
            return k
        return None

    def wait_applied(self, commit: str) -> dict:
        return self.kube.wait_for(f"Flux to apply {commit[:12]}", SYNC_TIMEOUT, lambda: self.applied(commit), 3)

    def runs(self) -> list[dict]:
        return self.kube.json("-n", NAMESPACE, "get", "workflows", "-l", "mlops.io/pipeline")["items"]

    def runs_of(self, commit: str) -> list[dict]:
        return [w for w in self.runs() if w["metadata"].get("annotations", {}).get("mlops.io/commit") == commit]

    def job_uid(self) -> str:
        return self.kube.json("-n", NAMESPACE, "get", "job", "mlops-gitops-submit")["metadata"]["uid"]

    def status(self) -> str:
        proc = subprocess.run(
            [MLOPS, "gitops", "status", "--context", CONTEXT, "--repo", str(self.workdir / "repo")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def gitops(kube, tmp_path_factory):
    """The demo data in the store, then `make gitops-up` (which seeds the repository:
    the seed commit starts the first run) and a copy of the GitOps folder."""
    work = tmp_path_factory.mktemp("gitops")
    subprocess.run([sys.executable, "-m", "mlops.data.demo", str(work)], check=True, timeout=300)
    env = dict(os.environ)
    pairs = (REPO / "manifests/overlays/kind/role-pipeline.env").read_text().split()
    creds = dict(p.split("=", 1) for p in pairs if "=" in p)
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9000",
        AWS_ACCESS_KEY_ID=creds["accesskey"],
        AWS_SECRET_ACCESS_KEY=creds["secretkey"],
    )
    pushed = subprocess.run(
        [MLOPS, "data", "push", str(work / "demo-wine.csv"), "--name", "demo-wine", "--store", "s3://mlops/store"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert pushed.returncode == 0, pushed.stderr
    pointer = yaml.safe_load((REPO / "manifests/gitops/demo-wine.data.yaml").read_text())
    assert pointer["version"] in pushed.stdout, "the pointer in git names the demo data's version"

    workdir = work / "state"
    started = time.monotonic()
    up = make("gitops-up", env={"GITOPS_DIR": str(workdir)})
    print(f"make gitops-up: {time.monotonic() - started:.0f} s\n{up.stderr[-2000:]}")
    source = work / "source"
    for folder in ("manifests/gitops", "schedules"):
        shutil.copytree(REPO / folder, source / folder)
    g = GitOps(kube, source, workdir)
    # pushed, or unchanged when the cluster's repository already holds the folder
    seed = re.findall(r"^(?:pushed|unchanged) ([0-9a-f]{40})$", up.stdout, re.M)
    assert seed, up.stdout
    g.seed = seed[-1]
    return g


def test_flux_runs_least_privilege(gitops, kube):
    for name in ("source-controller", "kustomize-controller"):
        deploy = kube.json("-n", "flux-system", "get", "deployment", name)
        assert deploy["status"].get("readyReplicas") == 1
    ns = kube.json("get", "namespace", "flux-system")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # the controller may not apply anything itself, and the applier only ConfigMaps and Jobs in mlops-runs
    who = "system:serviceaccount:flux-system:kustomize-controller"
    assert (
        kube.run(
            "auth", "can-i", "create", "deployments", "-n", "mlops-runs", f"--as={who}", check=False
        ).stdout.strip()
        == "no"
    )
    applier = "system:serviceaccount:flux-system:mlops-gitops-applier"
    assert kube.run("auth", "can-i", "create", "jobs", "-n", "mlops-runs", f"--as={applier}").stdout.strip() == "yes"
    for verb, what, ns_ in (
        ("create", "workflows", "mlops-runs"),
        ("create", "roles", "mlops-runs"),
        ("create", "jobs", "argo"),
    ):
        answer = kube.run("auth", "can-i", verb, what, "-n", ns_, f"--as={applier}", check=False).stdout.strip()
        assert answer == "no", (verb, what, ns_)


def test_the_seed_commit_started_one_run(gitops):
    applied = gitops.wait_applied(gitops.seed)
    assert applied["status"]["lastAppliedRevision"].endswith(gitops.seed)
    runs = gitops.kube.wait_for("the seed's run", 120, lambda: gitops.runs_of(gitops.seed), 3)
    assert len(runs) == 1
    assert runs[0]["metadata"]["labels"]["mlops.io/commit"] == gitops.seed
    # Only its start matters here (the parameter change below runs one to the end):
    # stopped, to spare the 2 cores the tests share.
    stop(gitops, runs[0]["metadata"]["name"])


def test_invalid_parameters_start_no_run_and_say_why(gitops):
    before = len(gitops.runs())
    gitops.edit("manifests/gitops/run-params.yaml", lambda d: d.update(seed="not-a-number"))
    state, commit, _ = gitops.push("an invalid seed")
    assert state == "pushed"
    applied = gitops.wait_applied(commit)
    ready = next(c for c in applied["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "mlops-gitops-submit" in ready["message"], ready["message"]
    assert gitops.runs_of(commit) == [] and len(gitops.runs()) == before
    status = gitops.status()
    assert "submit job: Failed: Error:" in status and "seed" in status, status


def test_a_parameter_change_starts_exactly_one_run_that_succeeds(gitops):
    gitops.edit("manifests/gitops/run-params.yaml", lambda d: d.update(seed=7))
    state, commit, pushed_at = gitops.push("seed 7")
    assert state == "pushed"
    runs = gitops.kube.wait_for("the run of the new commit", SYNC_TIMEOUT, lambda: gitops.runs_of(commit), 2)
    PUSH_TO_START.append(started(gitops, runs[0]["metadata"]["name"]) - pushed_at)
    applied = gitops.wait_applied(commit)
    assert next(c for c in applied["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert len(gitops.runs_of(commit)) == 1
    params = {p["name"]: p["value"] for p in runs[0]["spec"]["arguments"]["parameters"]}
    assert params["seed"] == "7" and params["code_version"] == commit
    name = runs[0]["metadata"]["name"]
    done = gitops.kube.wait_for(
        f"run {name} to finish",
        RUN_TIMEOUT,
        lambda: (
            (w := gitops.kube.json("-n", NAMESPACE, "get", "workflow", name)).get("status", {}).get("phase")
            in ("Succeeded", "Failed", "Error")
            and w
        ),
        10,
    )
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    gitops.changed = commit
    line = next(line for line in gitops.status().splitlines() if line.startswith(commit[:12]))
    assert name in line and "Succeeded" in line


def test_the_same_content_again_and_a_forced_reconcile_start_none(gitops):
    before, job = len(gitops.runs()), gitops.job_uid()
    state, commit, _ = gitops.push("the same again")
    assert state == "unchanged" and commit == gitops.changed
    token = str(time.time())
    gitops.kube.run(
        "-n",
        "flux-system",
        "annotate",
        "--overwrite",
        "kustomization/mlops-gitops",
        f"reconcile.fluxcd.io/requestedAt={token}",
    )
    gitops.kube.wait_for(
        "the forced reconcile",
        SYNC_TIMEOUT,
        lambda: gitops.kustomization()["status"].get("lastHandledReconcileAt") == token,
        2,
    )
    assert gitops.job_uid() == job
    assert len(gitops.runs()) == before


def test_a_commit_that_changes_nothing_a_run_reads_starts_none(gitops):
    before, job = len(gitops.runs()), gitops.job_uid()
    (gitops.source / "manifests/gitops/NOTES.md").write_text("Who to ask about these runs: the ML platform team.\n")
    state, commit, _ = gitops.push("notes only")
    assert state == "pushed"
    applied = gitops.wait_applied(commit)
    assert applied["status"]["lastAppliedRevision"].endswith(commit)
    assert gitops.job_uid() == job
    assert gitops.runs_of(commit) == [] and len(gitops.runs()) == before


def test_a_schedule_change_reconciles_the_cronworkflows(gitops):
    before = len(gitops.runs())
    gitops.edit("schedules/nightly-retrain.yaml", lambda d: d.update(cron="0 15 4 * * *"))
    state, commit, _ = gitops.push("retrain at 04:15")
    assert state == "pushed"
    gitops.wait_applied(commit)

    def schedule():
        items = gitops.kube.json("-n", NAMESPACE, "get", "cronworkflows")["items"]
        found = [c for c in items if c["metadata"]["name"].startswith("nightly-retrain")]
        return found and " ".join(found[0]["spec"].get("schedules") or [found[0]["spec"].get("schedule", "")])

    assert "15 4 * * *" in gitops.kube.wait_for("the CronWorkflow to follow", SYNC_TIMEOUT, schedule, 3)
    assert len(gitops.runs()) == before  # the run's inputs did not change: no run


def stop(gitops, name: str) -> None:
    gitops.kube.run(
        "-n", NAMESPACE, "patch", "workflow", name, "--type=merge", "-p", '{"spec":{"shutdown":"Terminate"}}'
    )


def started(gitops, name: str) -> float:
    """When Argo started the run (its status.startedAt)."""
    workflow = gitops.kube.wait_for(
        f"run {name} to start",
        120,
        lambda: (
            (w := gitops.kube.json("-n", NAMESPACE, "get", "workflow", name)).get("status", {}).get("startedAt") and w
        ),
        1,
    )
    return when(workflow["status"]["startedAt"])


def test_push_to_start_median_of_three(gitops):
    """Two more parameter pushes (their runs are stopped once started: only the start is measured)."""
    for seed in (11, 12):
        gitops.edit("manifests/gitops/run-params.yaml", lambda d, seed=seed: d.update(seed=seed))
        state, commit, pushed_at = gitops.push(f"seed {seed}")
        assert state == "pushed"
        runs = gitops.kube.wait_for(
            "the run of the new commit", SYNC_TIMEOUT, lambda commit=commit: gitops.runs_of(commit), 1
        )
        assert len(runs) == 1
        name = runs[0]["metadata"]["name"]
        PUSH_TO_START.append(started(gitops, name) - pushed_at)
        gitops.kube.run(
            "-n", NAMESPACE, "patch", "workflow", name, "--type=merge", "-p", '{"spec":{"shutdown":"Terminate"}}'
        )
    assert len(PUSH_TO_START) == 3
    median = statistics.median(PUSH_TO_START)
    print(f"push to Workflow start: {[round(t, 1) for t in PUSH_TO_START]} s; median {median:.1f} s")
    assert median < SYNC_TIMEOUT
