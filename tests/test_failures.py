"""Every failure reaches the user as one line that names the thing and the fix, exit status 1,
no traceback, and nothing registered (issue: "every failure one line")."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops.errors import StageError
from mlops.store import StoreError
from mlops.store.datasets import DataVersions
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry

MLOPS = str(Path(sys.executable).with_name("mlops"))


def mlops(*args, cwd, env=None, user=None) -> subprocess.CompletedProcess:
    command = [MLOPS, *args]
    if user:  # run as another user (for real permission errors)
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def assert_one_line(result, message):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stderr, result.stderr


def nothing_registered(workdir: Path) -> bool:
    store = workdir / ".mlops"
    return not store.exists() or ModelRegistry(FileStore(store)).names() == []


def _wine(demo_data, workdir, change=lambda frame: frame, name="wine.csv") -> str:
    frame = change(pd.read_csv(demo_data["wine"]))
    path = workdir / name
    frame.to_csv(path, index=False)
    return str(path)


def _infinite_magnesium(frame):
    frame = frame.astype({"magnesium": float})
    frame.loc[41, "magnesium"] = float("inf")
    return frame


def _nested_parquet(demo_data, workdir) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = workdir / "nested.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "tags": [["a"], ["b", "c"]], "target": ["p", "q"]}), path)
    return str(path)


def _params(workdir, text) -> str:
    path = workdir / "params.yaml"
    path.write_text(text)
    return str(path)


CASES = {
    # an inf in a feature, with column and row
    "inf": (
        lambda d, w: ["--data", _wine(d, w, _infinite_magnesium), "--target", "target"],
        "column 'magnesium' holds a non-finite value (inf) at row 42; replace it or drop the row",
    ),
    "nested": (
        lambda d, w: ["--data", _nested_parquet(d, w), "--target", "target"],
        "column 'tags' is nested (lists or structs); flatten it into plain columns first",
    ),
    "misspelled-hyperparameter": (
        lambda d, w: [
            "--data",
            _wine(d, w),
            "--target",
            "target",
            "--params",
            _params(w, "candidates:\n  classification:\n    random_forest: {n_estimator: [10]}\n"),
        ],
        "unknown hyperparameter 'n_estimator' for random_forest (classification) (did you mean 'n_estimators'?)",
    ),
    "bad-hyperparameter-value": (
        lambda d, w: [
            "--data",
            _wine(d, w),
            "--target",
            "target",
            "--params",
            _params(w, "candidates:\n  classification:\n    knn: {n_neighbors: [0]}\n"),
        ],
        "bad parameters for knn (classification): The 'n_neighbors' parameter of KNeighborsClassifier",
    ),
    "malformed-params": (
        lambda d, w: [
            "--data",
            _wine(d, w),
            "--target",
            "target",
            "--params",
            _params(w, "candidates: {classification: [\n"),
        ],
        "is not valid YAML",
    ),
    "port-not-a-number": (
        lambda d, w: ["--data", "http://host:abc/x.csv", "--target", "target"],
        "invalid data URI http://host:abc/x.csv: Port could not be cast to integer value",
    ),
    "malformed-data-version": (
        lambda d, w: ["--data", "wine@xyz", "--target", "target"],
        "data version reference 'wine@xyz' is malformed: use NAME@VERSION",
    ),
    "unknown-data-version": (
        lambda d, w: ["--data", "wine@deadbeef", "--target", "target"],
        "no data set 'wine' in file://",
    ),
    "columns-that-clean-alike": (
        lambda d, w: [
            "--data",
            _wine(d, w, lambda f: f.assign(**{"Mal ic Acid": 1.0}).rename(columns={"malic_acid": "mal_ic_acid"})),
            "--target",
            "target",
        ],
        "columns 'mal_ic_acid' and 'Mal ic Acid' both clean to 'mal_ic_acid'",
    ),
    "setting-not-a-number": (
        lambda d, w: ["--data", _wine(d, w), "--target", "target"],
        "MLOPS_TFDV_TIMEOUT_SECONDS must be a number, got 'soon'",
    ),
    "bad-model-name": (
        lambda d, w: ["--data", _wine(d, w), "--target", "target", "--model-name", "../etc"],
        "invalid model name '../etc'",
    ),
}
ENV = {"setting-not-a-number": {"MLOPS_TFDV_TIMEOUT_SECONDS": "soon"}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_run_fails_in_one_line_before_anything_runs(case, demo_data, tmp_path):
    make_args, message = CASES[case]
    result = mlops("run", *make_args(demo_data, tmp_path), cwd=tmp_path, env=ENV.get(case))
    assert_one_line(result, message)
    assert nothing_registered(tmp_path) and not (tmp_path / "runs").exists()


# -- A filesystem store that cannot be written ----------------------------------------------


@pytest.fixture
def world_readable(tmp_path_factory):
    """A directory another user can enter (pytest's own tmp dirs are private to root)."""
    directory = tmp_path_factory.mktemp("shared")
    os.chmod(directory, 0o755)
    for parent in directory.parents:
        if parent == Path("/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    return directory


def test_a_store_this_user_may_not_write_is_one_line(demo_data, world_readable):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    data = world_readable / "wine.csv"
    data.write_bytes(Path(demo_data["wine"]).read_bytes())
    os.chmod(data, 0o644)
    store = world_readable / "store"
    store.mkdir(mode=0o755)  # owned by root
    result = mlops(
        "data", "push", str(data), "--name", "wine", "--store", store.as_uri(), cwd=world_readable, user=65534
    )
    assert_one_line(result, f"cannot write the store at {store.as_uri()}")
    assert "permission denied: give this user write access, or choose another --store [EACCES]" in result.stderr


def test_a_store_on_a_read_only_file_system_is_one_line(demo_data, tmp_path):
    mount_point = tmp_path / "readonly"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {mounted.stderr.strip()}")
    try:
        result = mlops(
            "data", "push", str(demo_data["wine"]), "--name", "wine", "--store", mount_point.as_uri(), cwd=tmp_path
        )
        assert_one_line(result, "the file system is read-only: choose a writable --store [EROFS]")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize(
    "error, message",
    [
        # A directory removed under the store while it writes.
        (errno.ENOENT, "a directory on the path does not exist (or was removed while writing) [ENOENT]"),
        # FAT, some FUSE and network mounts have no hard links, which atomic publishing needs.
        (errno.EPERM, "is on a file system without hard links, which it needs to publish objects atomically"),
        (errno.ENOTSUP, "is on a file system without hard links"),
    ],
)
def test_store_errors_that_cannot_be_made_for_real_here_are_one_line(tmp_path, monkeypatch, wine_frame, error, message):
    """ENOENT mid-write and a file system without hard links cannot be produced on this machine's
    disks, so os.link fails on cue; the mapping to one line is what is tested."""

    def failing_link(source, target):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(
        StoreError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        DataVersions(FileStore(tmp_path / "store")).publish("wine", wine_frame, source="x")


def test_a_data_file_that_cannot_be_read_is_one_line(tmp_path):
    from mlops.stages.ingest import load_table

    directory = tmp_path / "wine.csv"
    directory.mkdir()  # a directory where a file is expected
    with pytest.raises(StageError, match="data file not found"):
        load_table(str(directory))
