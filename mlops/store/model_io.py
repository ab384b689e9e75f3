"""Saving and loading models without unpickling.

A pickle (joblib) runs whatever code its bytes name when it is loaded, so anyone
who can write a model file into the store or the artifact store could run code
in the next evaluate. Models and preprocessors are therefore stored in skops'
format and loaded with an explicit list of trusted types: the scikit-learn
types skops trusts by default plus the few listed here. A file that names any
other type is refused with one line, before anything in it is built.
"""

from __future__ import annotations

import io
from pathlib import Path

from mlops.errors import MlopsError

FORMAT = "skops"
FILE_NAME = "model.skops"

# Types outside skops' default trust that the pipeline's own models contain:
# numpy dtypes (recorded by the encoders), tree internals of the forests and boosting models, the k-NN index, and our
# own feature steps (mlops.stages.prepare.as_text; mlops.stages.features: the column transform with unique input
# names, calendar parts of dates, hashed high-cardinality categories, bags of words, and free text filled for the
# word counter, which models trained before BagOfWords hold).
TRUSTED_TYPES = (
    "mlops.stages.prepare.as_text",
    "mlops.stages.features.FeatureTransform",
    "mlops.stages.features.BagOfWords",
    "mlops.stages.features.CalendarParts",
    "mlops.stages.features.HashedCategories",
    "mlops.stages.features.fill_text",
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
)


class UnsafeModel(MlopsError):
    """A model file that names a type outside the trusted list, or cannot be read."""


def dumps(model) -> bytes:
    """The model in skops' format, byte for byte the same for the same model.

    skops names its array files and memo entries after Python object ids and
    stamps the archive with the time, so the same model would hash differently
    in every process; reproducibility checks compare these bytes. So ids become
    sequence numbers in document order and every timestamp a fixed one.
    """
    import skops.io as sio

    return _canonical_archive(sio.dumps(model))


_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _canonical_archive(data: bytes) -> bytes:
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
        compression = archive.infolist()[0].compress_type
    schema = json.loads(members.pop("schema.json"))
    numbering: dict[str, int] = {}

    def number(original) -> int:
        return numbering.setdefault(str(original), len(numbering))

    def renumber(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = number(value)
                elif key == "file" and isinstance(value, str) and value in members:
                    stem, dot, suffix = value.partition(".")
                    node[key] = f"{number(stem)}{dot}{suffix}"
                else:
                    renumber(value)
        elif isinstance(node, list):
            for item in node:
                renumber(item)

    renumber(schema)
    renamed = {}
    for name, content in members.items():
        stem, dot, suffix = name.partition(".")
        if stem not in numbering:
            raise UnsafeModel(f"skops archive member {name} is not referenced by its schema")
        renamed[f"{numbering[stem]}{dot}{suffix}"] = content
    renamed["schema.json"] = json.dumps(schema, indent=2).encode("utf-8")
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, renamed[name])
    return output.getvalue()


def loads(data: bytes, *, source: str = "model"):
    """Build the model in ``data`` if every type it names is trusted; else UnsafeModel."""
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as error:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise UnsafeModel(f"{source} is not a readable skops model file ({type(error).__name__}: {error})") from None
    refused = sorted(untrusted - set(TRUSTED_TYPES))
    if refused:
        raise UnsafeModel(f"{source} names types that are not trusted ({', '.join(refused[:5])}); refusing to load it")
    try:
        return sio.load(io.BytesIO(data), trusted=sorted(untrusted))
    except Exception as error:  # noqa: BLE001
        raise UnsafeModel(f"{source} could not be loaded ({type(error).__name__}: {error})") from None


def save(model, path: str | Path) -> bytes:
    """Write the model to ``path``; return the bytes written (for hashing)."""
    data = dumps(model)
    Path(path).write_bytes(data)
    return data


def load(path: str | Path, *, source: str | None = None):
    """The model in the file at ``path``; a message names ``source``, by default the file's name
    (a task's files live under paths that mean nothing to the person reading it)."""
    return loads(Path(path).read_bytes(), source=source or f"model file {Path(path).name!r}")
