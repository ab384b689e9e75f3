"""Print the image references of mlops/config.py for Make and shell.

`python3 scripts/images.py` prints NAME=ref lines (BASE_IMAGE=..., TFDV_IMAGE=...,
MINIO_IMAGE=..., IMAGE_VERSION=...). mlops/config.py imports only the
standard library, so this needs no installed package and no virtualenv.
"""

import sys
from pathlib import Path

NAMES = ("IMAGE_VERSION", "REGISTRY", "BASE_IMAGE", "TFDV_IMAGE", "MINIO_IMAGE", "GIT_IMAGE")


def image_refs(repo: Path) -> dict:
    sys.path.insert(0, str(repo))
    from mlops import config

    return {name: getattr(config, name) for name in NAMES}


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    for name, value in image_refs(repo).items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
