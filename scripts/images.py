"""Print the image references of components/images.py for Make and shell.

`python3 scripts/images.py` prints NAME=ref lines (BASE_IMAGE=..., TFDV_IMAGE=...,
MINIO_IMAGE=..., IMAGE_VERSION=...). It reads the module by path, so it needs no
installed package and no third-party library.
"""

import runpy
import sys
from pathlib import Path

NAMES = ("IMAGE_VERSION", "REGISTRY", "BASE_IMAGE", "TFDV_IMAGE", "MINIO_IMAGE")


def image_refs(repo: Path) -> dict:
    module = runpy.run_path(str(repo / "components" / "images.py"))
    return {name: module[name] for name in NAMES}


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    for name, value in image_refs(repo).items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
