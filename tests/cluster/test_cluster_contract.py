"""Contract tests: `mlops submit` and `mlops schedules sync` against a local fake
of the KFP v2beta1 REST API (tests/cluster/kfp_fake.py) that checks every request
body against the kfp_server_api models."""

import textwrap

import click
import pytest
from click.testing import CliRunner
from kfp import compiler, dsl
from kfp_fake import ContractError, FakeKFP, check_model, contract_errors

from mlops.cli.schedules import schedules as schedules_group
from mlops.cli.submit import submit as submit_command
from mlops.cluster import kfp_client
from pipelines import task_settings


@dsl.component(base_image="localhost:5001/mlops-base:0.1.0", install_kfp_package=False)
def _echo(data_uri: str, seed: int) -> str:
    return f"{data_uri}:{seed}"


@dsl.pipeline(name="contract-demo")
def _demo(data_uri: str, target: str, model_name: str, seed: int = 42, min_score: float = 0.0):
    task_settings.apply_task_settings(_echo(data_uri=data_uri, seed=seed))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "demo.yaml"
    compiler.Compiler().compile(_demo, str(path))
    return path


@pytest.fixture
def kfp():
    with FakeKFP() as fake:
        yield fake
        assert contract_errors(fake) == []


@pytest.fixture
def cli():
    @click.group()
    def root():
        pass

    root.add_command(submit_command)
    root.add_command(schedules_group)
    runner = CliRunner()
    return lambda *args: runner.invoke(root, [str(a) for a in args], catch_exceptions=False)


PARAMS = ["--param", "data_uri=s3://mlops/data/a.csv", "--param", "target=y", "--param", "model_name=m"]


# -- the fake itself ---------------------------------------------------------


def test_fake_rejects_unknown_fields_and_wrong_types():
    check_model("V2beta1Run", {"display_name": "r", "runtime_config": {"parameters": {"a": 1}}})
    with pytest.raises(ContractError, match="unknown field"):
        check_model("V2beta1Run", {"displayName_typo": "r"})
    with pytest.raises(ContractError, match="expected a string"):
        check_model("V2beta1Run", {"display_name": 3})
    with pytest.raises(ContractError, match="not in"):
        check_model("V2beta1RecurringRun", {"mode": "ON"})


# -- submit ------------------------------------------------------------------


def test_submit_creates_one_run_and_is_idempotent(kfp, cli, spec):
    first = cli("submit", "--host", kfp.url, "--package", spec, *PARAMS)
    assert first.exit_code == 0, first.output
    assert "created" in first.output and "/#/runs/details/run-" in first.output
    assert kfp.count("POST", r".*/runs") == 1
    uploads = kfp.count("POST", r".*/pipelines/upload.*")

    again = cli("submit", "--host", kfp.url, "--package", spec, *PARAMS)
    assert again.exit_code == 0, again.output
    assert "not created again" in again.output
    assert kfp.count("POST", r".*/runs") == 1  # no duplicate run
    assert kfp.count("POST", r".*/pipelines/upload.*") == uploads  # nothing re-uploaded
    run = next(iter(kfp.runs.values()))
    assert run["runtime_config"]["parameters"] == {
        "data_uri": "s3://mlops/data/a.csv",
        "target": "y",
        "model_name": "m",
    }


@pytest.mark.parametrize(
    "extra",
    [
        # another data pointer is another run
        ["--param", "data_uri=s3://mlops/data/b.csv"],
        # the same inputs at another commit is another run (one run per commit)
        ["--commit", "0123abcd"],
    ],
)
def test_submit_new_key_new_run_same_version(kfp, cli, spec, extra):
    assert cli("submit", "--host", kfp.url, "--package", spec, *PARAMS).exit_code == 0
    versions = dict(kfp.versions)
    assert cli("submit", "--host", kfp.url, "--package", spec, *PARAMS, *extra).exit_code == 0
    assert kfp.count("POST", r".*/runs") == 2
    assert kfp.versions == versions  # same spec: its version is reused
    run_versions = {r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.runs.values()}
    assert len(run_versions) == 1
    assert kfp.versions[run_versions.pop()]["display_name"].startswith("spec-")


def test_submit_typed_params_and_explicit_key(kfp, cli, spec):
    res = cli(
        "submit",
        "--host",
        kfp.url,
        "--package",
        spec,
        *PARAMS,
        "--param",
        "seed=7",
        "--param",
        "min_score=1",
        "--key",
        "job-abc",
    )
    assert res.exit_code == 0, res.output
    run = next(iter(kfp.runs.values()))
    assert run["display_name"] == "training-pipeline-job-abc"
    assert run["runtime_config"]["parameters"]["seed"] == 7
    assert run["runtime_config"]["parameters"]["min_score"] == 1.0


def test_submit_params_file(kfp, cli, spec, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("data_uri: s3://mlops/x.csv\ntarget: 1\nmodel_name: m\n")
    res = cli("submit", "--host", kfp.url, "--package", spec, "--params-file", f)
    assert res.exit_code == 0, res.output
    # target is a string parameter: a YAML number is sent as a string
    assert next(iter(kfp.runs.values()))["runtime_config"]["parameters"]["target"] == "1"


@pytest.mark.parametrize("state,code", [("SUCCEEDED", 0), ("FAILED", 1)])
def test_submit_wait_exit_code(kfp, cli, spec, state, code):
    kfp.final_run_state = state
    res = cli("submit", "--host", kfp.url, "--package", spec, *PARAMS, "--wait")
    assert res.exit_code == code, res.output
    assert f"state: {state}" in res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--param", "nope=1"], "unknown pipeline parameter"),
        (["--param", "novalue"], "NAME=VALUE"),
        (["--param", "seed=abc"], "must be integer"),
    ],
)
def test_submit_usage_errors(kfp, cli, spec, args, message):
    res = cli("submit", "--host", kfp.url, "--package", spec, *PARAMS, *args)
    assert res.exit_code == 2
    assert message in res.output
    assert kfp.count("POST", r".*/runs") == 0


def test_submit_malformed_params_file_is_one_usage_line(kfp, cli, spec, tmp_path):
    broken = tmp_path / "params.yaml"
    broken.write_text("data_uri: [x\n")
    res = cli("submit", "--host", kfp.url, "--package", spec, "--params-file", broken)
    assert res.exit_code == 2 and "is not readable YAML" in res.output and "Traceback" not in res.output
    assert kfp.count("POST", r".*/runs") == 0


def test_submit_missing_required_param_is_usage_error(kfp, cli, spec):
    res = cli("submit", "--host", kfp.url, "--package", spec, "--param", "target=y")
    assert res.exit_code == 2 and "missing required" in res.output


def test_submit_unreachable_host_is_one_line_failure(cli, spec):
    res = cli("submit", "--host", "http://127.0.0.1:9", "--package", spec, *PARAMS)
    assert res.exit_code == 1
    assert "Traceback" not in res.output


# -- schedules sync ------------------------------------------------------------


def _write(directory, name, body):
    (directory / f"{name}.yaml").write_text(textwrap.dedent(body))


def _schedule_dir(tmp_path):
    d = tmp_path / "schedules"
    d.mkdir()
    _write(
        d,
        "nightly",
        """\
        name: nightly
        cron: "0 0 3 * * *"
        params: {data_uri: s3://mlops/d.csv, target: y, model_name: nightly}
        """,
    )
    _write(
        d,
        "weekly",
        """\
        name: weekly
        cron: "0 0 4 * * 1"
        params: {data_uri: s3://mlops/d.csv, target: y, model_name: weekly, seed: 3}
        """,
    )
    # kustomization.yaml packs the files into a ConfigMap; it is not a schedule
    (d / "kustomization.yaml").write_text("configMapGenerator: []\n")
    return d


def _live(kfp):
    return sorted((r["display_name"], r["mode"]) for r in kfp.recurring.values())


def test_schedules_sync_lifecycle(kfp, cli, spec, tmp_path):
    d = _schedule_dir(tmp_path)
    sync = ("schedules", "sync", "--host", kfp.url, "--package", spec, "--dir", d)

    res = cli(*sync)  # create missing
    assert res.exit_code == 0, res.output
    assert "created: nightly, weekly" in res.output
    assert _live(kfp) == [("nightly", "ENABLE"), ("weekly", "ENABLE")]
    nightly_id = next(k for k, r in kfp.recurring.items() if r["display_name"] == "nightly")
    weekly = next(r for r in kfp.recurring.values() if r["display_name"] == "weekly")
    assert weekly["runtime_config"]["parameters"]["seed"] == 3
    assert weekly["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * 1"

    mutations = r".*/recurringruns(/[^/]+(:enable|:disable)?)?"
    before = kfp.count("POST", mutations) + kfp.count("DELETE", mutations)
    res = cli(*sync)  # nothing changed: no-op
    assert res.exit_code == 0 and "no changes" in res.output
    assert kfp.count("POST", mutations) + kfp.count("DELETE", mutations) == before

    _write(
        d,
        "nightly",
        """\
        name: nightly
        cron: "0 30 2 * * *"
        params: {data_uri: s3://mlops/d.csv, target: y, model_name: nightly}
        """,
    )
    res = cli(*sync)  # changed: replaced (new one created, old disabled and deleted)
    assert "replaced: nightly" in res.output
    assert nightly_id not in kfp.recurring
    assert kfp.count("POST", rf".*/recurringruns/{nightly_id}:disable") == 1
    assert kfp.count("DELETE", rf".*/recurringruns/{nightly_id}") == 1
    assert _live(kfp) == [("nightly", "ENABLE"), ("weekly", "ENABLE")]

    (d / "weekly.yaml").unlink()
    res = cli(*sync)  # removed from git: disabled, kept
    assert "disabled: weekly" in res.output
    assert _live(kfp) == [("nightly", "ENABLE"), ("weekly", "DISABLE")]

    res = cli(*sync)
    assert "no changes" in res.output


def test_schedules_sync_leaves_unmanaged_and_dry_run_changes_nothing(kfp, cli, spec, tmp_path):
    d = _schedule_dir(tmp_path)
    client = kfp_client.make_client(kfp.url)
    exp = kfp_client.ensure_experiment(client)
    pid, vid = kfp_client.ensure_pipeline_version(client, spec)
    client.create_recurring_run(
        exp,
        "hand-made",
        cron_expression="0 0 1 * * *",
        params={"data_uri": "a", "target": "b", "model_name": "c"},
        pipeline_id=pid,
        version_id=vid,
    )
    res = cli("schedules", "sync", "--host", kfp.url, "--package", spec, "--dir", d, "--dry-run")
    assert res.exit_code == 0 and "would created: nightly, weekly" in res.output
    assert _live(kfp) == [("hand-made", "ENABLE")]
    cli("schedules", "sync", "--host", kfp.url, "--package", spec, "--dir", d)
    (d / "nightly.yaml").unlink()
    (d / "weekly.yaml").unlink()
    cli("schedules", "sync", "--host", kfp.url, "--package", spec, "--dir", d)
    assert ("hand-made", "ENABLE") in _live(kfp)


@pytest.mark.parametrize(
    "body,message",
    [
        ('name: Bad_Name\ncron: "0 0 3 * * *"\n', "DNS label"),
        ('name: ok\ncron: "0 3 * * *"\n', "6 fields"),
        ('name: ok\ncron: "0 0 3 * * *"\nschedule: x\n', "unknown field"),
        ('name: ok\ncron: "0 0 3 * * *"\nmax_concurrency: 0\n', "max_concurrency"),
        ('name: ok\ncron: "0 0 3 * * *"\nparams: {nope: 1}\n', "unknown pipeline parameter"),
        (
            'name: ok\ncron: "0 0 3 * * *"\nparams: {data_uri: a@latest, target: t, model_name: ../x}\n',
            "invalid model name '../x'",
        ),
        ('name: ok\ncron: "0 61 3 * * *"\n', "'cron' minute: '61' is not in 0-59"),
        ('name: ok\ncron: "0 0 3 * JANUARY *"\n', "'cron' month: 'JANUARY' is not in 1-12"),
        ("name: [ok\n", "not valid YAML"),
    ],
)
def test_schedules_invalid_file_is_usage_error(kfp, cli, spec, tmp_path, body, message):
    (tmp_path / "s.yaml").write_text(body)
    res = cli("schedules", "sync", "--host", kfp.url, "--package", spec, "--dir", tmp_path)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert kfp.recurring == {}


def test_submit_resolves_a_data_pointer_and_keys_the_run_on_it(kfp, cli, spec, tmp_path):
    """data_uri may be a pointer file from git: the run gets NAME@VERSION, keyed on it."""
    pointer = tmp_path / "wine.data.yaml"
    version = "6acdb773457c181f4418ee965a432bfb20e0705429fa4069a13531ea5cf80246"
    pointer.write_text(f"name: wine\nversion: {version}\n")
    args = [
        "submit",
        "--host",
        kfp.url,
        "--package",
        spec,
        "--param",
        f"data_uri={pointer}",
        "--param",
        "target=target",
        "--param",
        "model_name=wine",
    ]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert cli(*args).exit_code == 0  # same pointer: no second run
    assert [r["runtime_config"]["parameters"]["data_uri"] for r in kfp.runs.values()] == [f"wine@{version}"]
    pointer.write_text(f"name: wine\nversion: '{'0' * 64}'\n")
    assert cli(*args).exit_code == 0  # the pointer moved: a new run
    assert kfp.count("POST", r".*/runs") == 2
    pointer.write_text("name: wine\n")
    broken = cli(*args)
    assert broken.exit_code == 2 and "needs 'name' and 'version'" in broken.output


def test_submit_records_the_commit_as_code_version(kfp, cli, tmp_path):
    """With --commit, a pipeline that has code_version gets it, so the lineage names the commit."""
    from pipelines.compile import COMPILED_DIR

    spec_path = COMPILED_DIR / "training_pipeline.yaml"
    result = cli(
        "submit",
        "--host",
        kfp.url,
        "--package",
        spec_path,
        "--commit",
        "0123abcd",
        "--param",
        "data_uri=wine@latest",
        "--param",
        "target=target",
        "--param",
        "model_name=wine",
    )
    assert result.exit_code == 0, result.output
    assert next(iter(kfp.runs.values()))["runtime_config"]["parameters"]["code_version"] == "0123abcd"


def test_a_monitor_schedule_runs_the_monitor_pipeline(kfp, cli, tmp_path):
    """schedules/ may declare the drift monitor; it gets its own pipeline (the compiled monitor spec)."""
    d = tmp_path / "schedules"
    d.mkdir()
    _write(
        d,
        "train",
        """\
        name: train
        cron: "0 0 3 * * *"
        params: {data_uri: wine@latest, target: target, model_name: wine}
        """,
    )
    _write(
        d,
        "watch",
        """\
        name: watch
        cron: "0 30 2 * * *"
        pipeline: monitor
        params: {data_uri: wine-live@latest, model_name: wine, allow_retrain: true}
        """,
    )
    res = cli("schedules", "sync", "--host", kfp.url, "--dir", d)
    assert res.exit_code == 0, res.output
    runs = {r["display_name"]: r for r in kfp.recurring.values()}
    assert runs["watch"]["runtime_config"]["parameters"]["allow_retrain"] is True
    pipelines = {p["display_name"]: p["pipeline_id"] for p in kfp.pipelines.values()}
    assert {"training-pipeline", "monitor-pipeline"} <= set(pipelines)
    assert runs["watch"]["pipeline_version_reference"]["pipeline_id"] == pipelines["monitor-pipeline"]
    assert runs["train"]["pipeline_version_reference"]["pipeline_id"] == pipelines["training-pipeline"]
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(
        bad,
        "watch",
        """\
        name: watch
        cron: "0 30 2 * * *"
        pipeline: monitor
        params: {data_uri: x@latest, model_name: wine, target: y}
        """,
    )
    res = cli("schedules", "sync", "--host", kfp.url, "--dir", bad)
    assert res.exit_code == 2 and "unknown pipeline parameter(s) ['target']" in res.output
