"""Wait until the cluster path is ready, using the Kubernetes Python client.

Ready means: every Deployment in the given namespaces has all replicas updated and
available, and every Job there has succeeded. Prints one line per object still
pending at each poll; exits 1 on timeout (with what was not ready), 0 when ready.

    .venv/bin/python scripts/wait_ready.py -n mlops-minio -n kubeflow --timeout 1200
"""

from __future__ import annotations

import argparse
import sys
import time


def pending_objects(apps, batch, namespaces) -> list[str]:
    """Names of Deployments/Jobs in `namespaces` that are not ready yet."""
    pending = []
    for ns in namespaces:
        for dep in apps.list_namespaced_deployment(ns).items:
            want = dep.spec.replicas if dep.spec.replicas is not None else 1
            st = dep.status
            ok = (
                (st.observed_generation or 0) >= (dep.metadata.generation or 0)
                and (st.updated_replicas or 0) >= want
                and (st.available_replicas or 0) >= want
            )
            if not ok:
                pending.append(f"deployment {ns}/{dep.metadata.name} ({st.available_replicas or 0}/{want} available)")
        for job in batch.list_namespaced_job(ns).items:
            if job.metadata.annotations and "argocd.argoproj.io/hook" in job.metadata.annotations:
                continue
            if not (job.status.succeeded or 0) >= 1:
                failed = job.status.failed or 0
                pending.append(f"job {ns}/{job.metadata.name} (failed pods: {failed})")
    return pending


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--namespace", action="append", required=True)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds")
    parser.add_argument("--interval", type=int, default=10, help="seconds between polls")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    args = parser.parse_args(argv)

    from kubernetes import client, config

    config.load_kube_config(context=args.context)
    apps, batch = client.AppsV1Api(), client.BatchV1Api()
    deadline = time.monotonic() + args.timeout
    while True:
        pending = pending_objects(apps, batch, args.namespace)
        if not pending:
            print(f"ready: {', '.join(args.namespace)}")
            return 0
        if time.monotonic() > deadline:
            print("not ready after %ds:\n  %s" % (args.timeout, "\n  ".join(pending)), file=sys.stderr)
            return 1
        print(f"waiting for {len(pending)}: {pending[0]}{' …' if len(pending) > 1 else ''}")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
