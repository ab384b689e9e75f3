"""The wine job as a plain scikit-learn script: split, four candidates, the best on validation,
its test score, the model saved. What every tool in bench/results.md does, without a tool.

    python bench/peers/wine_plain.py OUT_DIR
"""

import pickle
import sys
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CANDIDATES = {
    "logistic_regression_C0.1": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
    "logistic_regression_C1": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
    "random_forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=8, random_state=42, n_jobs=1),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100,
                                                                     random_state=42),
}


def main(out: Path) -> float:
    features, target = load_wine(return_X_y=True, as_frame=True)
    x_train, x_rest, y_train, y_rest = train_test_split(features, target, test_size=0.3, random_state=42)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=42)
    scores = {}
    for name, make in CANDIDATES.items():
        model = make().fit(x_train, y_train)
        scores[name] = (f1_score(y_val, model.predict(x_val), average="macro"), model)
    best = max(scores, key=lambda name: scores[name][0])
    model = scores[best][1]
    test = f1_score(y_test, model.predict(x_test), average="macro")
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.pkl").write_bytes(pickle.dumps(model))
    return test


if __name__ == "__main__":
    print(f"test f1_macro {main(Path(sys.argv[1])):.4f}")
