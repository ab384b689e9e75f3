"""Component image references: the one place that names them.

The compiled pipeline spec, the Dockerfiles' tags (`make images`), `make kind-load`
and the kustomize manifests all read these names, so a release bumps one line.
The registry is kind's local registry (see kind-config.yaml). These are constants,
not environment lookups, so a compile is the same on every machine.
"""

IMAGE_VERSION = "0.1.0"
REGISTRY = "localhost:5001"

# Most stages: Python 3.11 + the main environment (kfp, pandas, scikit-learn, minio).
BASE_IMAGE = f"{REGISTRY}/mlops-base:{IMAGE_VERSION}"
# The validate stage: BASE_IMAGE plus the pinned TFDV interpreter (.venv-tfdv).
TFDV_IMAGE = f"{REGISTRY}/mlops-tfdv:{IMAGE_VERSION}"
# MinIO built from source (no community images are published since 2025-10).
MINIO_IMAGE = f"{REGISTRY}/mlops-minio:{IMAGE_VERSION}"
