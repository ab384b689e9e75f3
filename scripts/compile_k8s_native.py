"""Compile training_pipeline to Kubernetes-native Pipeline + PipelineVersion YAML.

    .venv/bin/python scripts/compile_k8s_native.py manifests/pipelines

For KFP API servers running with --pipelines-store=kubernetes:
`kubectl apply -f manifests/pipelines/training-pipeline.k8s.yaml` publishes it.
"""

import sys

from pipelines.compile import compile_kubernetes_native
from pipelines.training import training_pipeline


def main(argv: list[str]) -> int:
    out_dir = argv[1] if len(argv) > 1 else "manifests/pipelines"
    path = compile_kubernetes_native(training_pipeline, out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
