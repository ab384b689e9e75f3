"""What a run's split is and which data it names: light enough for the CLI process to import.

The CLI process of ``mlops run`` waits through the whole run; it keeps to this
module (no pandas, NumPy or Arrow), so its memory stays small while the tasks
work (mlops.stages.ingest does the reading and splitting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlops import config
from mlops.errors import StageError

SPLITS = ("train", "validation", "test")
SPLIT_SCHEME = "row-key-v3"  # the rows' 64-bit content keys (mlops.data.content, mlops-content-v3)
# Looks like a data version reference but may be malformed (no path separators).
_REF_LIKE = re.compile(r"^[^/\\:]+@[^/\\]*$")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions for validation and test (train gets the rest) and the hash salt."""

    validation_fraction: float = config.DEFAULT_VALIDATION_FRACTION
    test_fraction: float = config.DEFAULT_TEST_FRACTION
    salt: str = ""

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
                raise StageError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}")
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise StageError(
                "validation_fraction + test_fraction must leave at least 10% for training, "
                f"got {self.validation_fraction} + {self.test_fraction}"
            )

    def to_json(self) -> dict:
        return {
            "scheme": SPLIT_SCHEME,
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "salt": self.salt,
        }


def dataset_name(data_uri: str) -> str:
    """The data set's name: a reference's name, else the file's stem (``wine.csv`` → ``wine``)."""
    from mlops.store.datasets import REF_PATTERN

    match = REF_PATTERN.match(data_uri)
    if match:
        return match["name"]
    stem = Path(urlparse(data_uri).path or data_uri).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "data"


def is_version_reference(data_uri: str) -> bool:
    """``NAME@VERSION`` (well-formed or not), as opposed to a path or URL."""
    return bool(_REF_LIKE.match(data_uri)) and not Path(data_uri).exists()
