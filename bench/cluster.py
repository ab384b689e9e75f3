"""The whole demo run on the kind cluster (Argo Workflows) against `mlops run` on the same data.

Needs a cluster with Argo deployed (`make cluster-up deploy-argo`) and the demo data pushed
(docs/cluster.md). For each repeat it submits the training pipeline with a fresh model name
(so nothing is cached or compared across repeats), waits, and reads from the Workflow and its
pods: the run's wall time, and per task the pod's life (node start to finish) against its main
container's run, whose difference is the pod overhead (scheduling, Argo's init and wait
containers, artifact transfer through MinIO). Then it times `mlops run` on the same CSV.

    .venv/bin/python bench/cluster.py --repeats 3 [--context kind-mlops] [--out bench/cluster.json]

Results: a JSON file and a Markdown table on stdout (bench/cluster.md keeps the table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).with_name("mlops"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kubectl_json(context: str, *args: str) -> dict:
    done = subprocess.run(
        [KUBECTL, "--context", context, *args, "-o", "json"], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def cluster_run(context: str, env: dict) -> dict:
    model = f"bench-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    done = subprocess.run(
        [
            MLOPS,
            "submit",
            "--engine",
            "argo",
            "--context",
            context,
            "--param",
            "data_uri=demo-wine@latest",
            "--param",
            "target=target",
            "--param",
            f"model_name={model}",
            "--wait",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"cluster run failed: {done.stderr.strip()}")
    name = done.stdout.split()[1]
    workflow = kubectl_json(context, "-n", "mlops-runs", "get", "workflow", name)
    pods = kubectl_json(context, "-n", "mlops-runs", "get", "pods", "-l", f"workflows.argoproj.io/workflow={name}")
    main_seconds = {}
    for pod in pods["items"]:
        node = (pod["metadata"].get("annotations") or {}).get("workflows.argoproj.io/node-id")
        for status in pod["status"].get("containerStatuses", []):
            terminated = status.get("state", {}).get("terminated")
            if status["name"] == "main" and terminated:
                main_seconds[node] = seconds(terminated["finishedAt"]) - seconds(terminated["startedAt"])
    tasks = []
    for node in workflow["status"]["nodes"].values():
        if node.get("type") != "Pod" or node["id"] not in main_seconds:
            continue
        life = seconds(node["finishedAt"]) - seconds(node["startedAt"])
        tasks.append(
            {
                "task": node["templateName"].split("--")[-1],
                "pod_seconds": life,
                "main_seconds": main_seconds[node["id"]],
                "overhead_seconds": life - main_seconds[node["id"]],
            }
        )
    status = workflow["status"]
    return {
        "workflow": name,
        "submit_wait_seconds": elapsed,
        "workflow_seconds": seconds(status["finishedAt"]) - seconds(status["startedAt"]),
        "tasks": tasks,
    }


def local_run(csv: Path) -> float:
    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        done = subprocess.run(
            [MLOPS, "run", "--data", str(csv), "--target", "target"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise SystemExit(f"local run failed: {done.stderr.strip()}")
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--context", default="kind-mlops")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "cluster.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        subprocess.run([sys.executable, "-m", "mlops.data.demo", data], check=True, capture_output=True)
        csv = Path(data) / "demo-wine.csv"
        runs = [cluster_run(args.context, dict(os.environ)) for _ in range(args.repeats)]
        local = [local_run(csv) for _ in range(args.repeats)]
    cluster = statistics.median(r["workflow_seconds"] for r in runs)
    overheads = [t["overhead_seconds"] for r in runs for t in r["tasks"]]
    mains = [t["main_seconds"] for r in runs for t in r["tasks"]]
    result = {
        "repeats": args.repeats,
        "cluster_workflow_seconds_median": cluster,
        "local_mlops_run_seconds_median": statistics.median(local),
        "ratio": cluster / statistics.median(local),
        "pod_overhead_seconds_median": statistics.median(overheads),
        "main_container_seconds_median": statistics.median(mains),
        "tasks_per_run": len(runs[0]["tasks"]),
        "runs": runs,
        "local_seconds": local,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | median |\n| --- | ---: |")
    print(f"| whole demo run on kind (Workflow start to finish) | {cluster:.0f} s |")
    print(f"| `mlops run` on the same data, this machine | {statistics.median(local):.0f} s |")
    print(f"| ratio kind / local | {result['ratio']:.1f} |")
    print(
        f"| pod overhead per task (pod life minus its main container) | {result['pod_overhead_seconds_median']:.1f} s |"
    )
    print(f"| main container per task | {result['main_container_seconds_median']:.1f} s |")
    print(f"| task pods per run | {result['tasks_per_run']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
