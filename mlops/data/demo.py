"""Write the demo data sets: real tables that ship inside scikit-learn, so nothing is downloaded.

- demo-wine.csv: 178 wines, 13 chemistry features, 3 cultivars (multiclass, string
  labels; its column names include ``od280/od315_of_diluted_wines``).
- demo-breast-cancer.csv: 569 tumours, 30 features, malignant/benign (binary, string labels).
- demo-diabetes.csv: 442 patients, 10 features, disease progression (regression).

The ``demo-`` prefix gives them names of their own: the model name defaults to
the file's stem, and the curated schema schemas/demo-wine.pbtxt applies to the
model ``demo-wine`` only, never to a user's own ``wine.csv``.

    python -m mlops.data.demo OUTPUT_DIR
"""

import sys
from pathlib import Path

from sklearn import datasets

LOADERS = {
    "demo-wine": datasets.load_wine,
    "demo-breast-cancer": datasets.load_breast_cancer,
    "demo-diabetes": datasets.load_diabetes,
}


def write_demo_data(output_dir: Path) -> list[Path]:
    """Write each data set as CSV with a ``target`` column; return the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, loader in LOADERS.items():
        bunch = loader(as_frame=True)
        frame = bunch.frame.copy()
        if hasattr(bunch, "target_names"):  # classification: readable labels, not 0/1/2
            frame["target"] = frame["target"].map(lambda index, names=bunch.target_names: str(names[index]))
        path = output_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mlops.data.demo OUTPUT_DIR")
    for written_path in write_demo_data(Path(sys.argv[1])):
        print(written_path)
