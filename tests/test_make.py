"""The Makefile contract: self-documenting, and `make setup` is a no-op when nothing changed."""

import subprocess

from mlops.config import PROJECT_ROOT


def make(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True
    )


def test_help_lists_the_user_facing_targets():
    listed = {line.split()[0] for line in make("help").stdout.splitlines() if line.strip()}
    assert {"setup", "run", "lint", "test", "compile", "minio-up", "minio-down", "images", "deploy"} <= {
        name.replace("\x1b[36m", "").replace("\x1b[0m", "") for name in listed
    }


def test_setup_is_up_to_date_after_it_ran():
    # `make setup` ran before the tests; with the locks unchanged it must have nothing to do.
    assert make("--question", ".venv/.installed", ".venv-tfdv/.installed").returncode == 0
