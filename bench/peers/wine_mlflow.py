"""The wine job in MLflow, with its defaults (a SQLite tracking store): each candidate a run with
its parameters, metric and model; the best on validation tested and registered.

Runs in a throw-away environment of its own (bench/run.py makes it), outside the project's locks.

    python bench/peers/wine_mlflow.py OUT_DIR
"""

import sys
from pathlib import Path

import mlflow
import mlflow.sklearn
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from wine_plain import CANDIDATES, load_wine


TREE_TYPES = ["sklearn.tree._tree.Tree", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
              "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"]


def main(out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    mlflow.set_experiment("wine")
    features, target = load_wine(return_X_y=True, as_frame=True)
    x_train, x_rest, y_train, y_rest = train_test_split(features, target, test_size=0.3, random_state=42)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=42)
    best = None
    for name, make in CANDIDATES.items():
        with mlflow.start_run(run_name=name) as run:
            model = make().fit(x_train, y_train)
            score = f1_score(y_val, model.predict(x_val), average="macro")
            mlflow.log_param("candidate", name)
            mlflow.log_metric("validation_f1_macro", score)
            # MLflow 3.17 saves scikit-learn models with skops; the tree models' internals need naming.
            mlflow.sklearn.log_model(model, name="model", input_example=x_train.head(2),
                                     skops_trusted_types=TREE_TYPES)
            if best is None or score > best[0]:
                best = (score, run.info.run_id, model)
    test = f1_score(y_test, best[2].predict(x_test), average="macro")
    with mlflow.start_run(run_id=best[1]):
        mlflow.log_metric("test_f1_macro", test)
    mlflow.register_model(f"runs:/{best[1]}/model", "wine")
    return test


if __name__ == "__main__":
    print(f"test f1_macro {main(Path(sys.argv[1])):.4f}")
