"""Why a task came from the cache, or why it ran (`mlops run --explain-cache`, the report's Cache section).

The explanation's logic on small records first; then five real runs of the training pipeline
through the CLI: a first run, one parameter changed, one data byte changed, the same run again, and
a schema with one kind tag more.
"""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.reporting import cache_explain, report
from mlops.store import AlreadyExists
from mlops.store.fs import FileStore

SPLIT_OUT = "/runs/a/split/train"


def task(name, outcome="miss", *, data_version=None, parameters=None, inputs=None, code="c1", image="img:1", **rest):
    return cache_explain.task_entry(
        name,
        outcome,
        data_version=data_version,
        parameters=parameters or {},
        inputs=inputs or {},
        code=code,
        image=image,
        outputs=rest.get("outputs", []),
        stored=outcome == "miss" if rest.get("stored") is None else rest["stored"],
    )


def artifact(uri, producer="", **metadata):
    return [{"uri": uri, "metadata": metadata, "producer": producer}]


def pipeline_run(run_id, *, data="d@" + "a" * 64, seed=42, outcomes=None, code="c1", image="img:1", **kwargs):
    """A small training-like run: ingest (never cached) → split → train (seed) → register (never)."""
    outcomes = outcomes or {}
    split_out = f"/runs/{kwargs.get('split_run', run_id)}/split/train"
    tasks = [
        task("ingest", "never"),
        task(
            "split",
            outcomes.get("split", "miss"),
            stored=kwargs.get("stored"),
            data_version=data,
            parameters={"test_fraction": 0.15},
            code=code,
            image=image,
            outputs=[split_out],
        ),
        task(
            "train",
            outcomes.get("train", "miss"),
            stored=kwargs.get("stored"),
            parameters={"seed": seed},
            inputs={"train_split": artifact(split_out, "split", rows=100)},
            code=code,
            image=image,
            outputs=[f"/runs/{run_id}/train/model"],
        ),
        task("register", "never"),
    ]
    return cache_explain.run_record(
        run_id=run_id,
        pipeline="training-pipeline",
        model="m",
        started=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        code_version=kwargs.get("code_version", "v1"),
        cache=kwargs.get("cache", True),
        tasks=tasks,
    )


def by_task(explanations):
    return {e.task: e for e in explanations}


def test_a_first_run_has_nothing_to_compare_with_and_says_which_tasks_never_cache():
    found = by_task(cache_explain.explain(pipeline_run("r1"), None))
    assert found["split"].outcome == "miss" and "no earlier run" in found["split"].reason
    assert found["ingest"].outcome == "never" and "not cacheable" in found["ingest"].reason
    assert not found["train"].changes


def test_a_changed_parameter_is_named_for_its_task_and_the_others_come_from_the_cache():
    first = pipeline_run("r1")
    second = pipeline_run("r2", seed=7, outcomes={"split": "hit"}, split_run="r1")
    found = by_task(cache_explain.explain(second, first))
    assert found["split"].cached and found["split"].reason == "same key as the last run"
    assert not found["train"].cached
    assert found["train"].changes == (cache_explain.Change("parameter", "seed", 42, 7),)
    assert found["train"].reason == "parameter seed: 42 → 7"


def test_a_changed_data_version_is_named_where_it_enters_and_downstream():
    first = pipeline_run("r1")
    second = pipeline_run("r2", data="d@" + "b" * 64)
    found = by_task(cache_explain.explain(second, first))
    assert found["split"].parts() == {"data version"}
    assert found["split"].reason == f"data version: d@{'a' * 12} → d@{'b' * 12}"
    # train's own key holds no data version: the change reaches it through split's new output
    assert found["train"].parts() == {"data version"} and found["train"].changes[0].through == "split"
    assert found["train"].reason.endswith("(upstream, at split)")


@pytest.mark.parametrize(
    "change, part",
    [
        ({"code": "c2"}, "code"),  # the component's source
        ({"image": "img:2"}, "image"),
    ],
)
def test_a_changed_code_or_image_is_named(change, part):
    found = by_task(cache_explain.explain(pipeline_run("r2", **change), pipeline_run("r1")))
    assert part in found["split"].parts() and part in found["train"].parts()


@pytest.mark.parametrize(
    "previous, expected",
    [
        # the same key ran last time, yet nothing is cached: the cache (or the run's outputs) went
        ({}, "its cached outputs are gone"),
        ({"outcomes": {"split": "hit", "train": "hit"}}, "its cached outputs are gone"),
        ({"cache": False, "outcomes": {"split": "off", "train": "off"}}, "which had the cache off"),
        ({"stored": False}, "which did not finish it"),  # it failed last time: nothing was stored
    ],
)
def test_a_miss_with_an_unchanged_key_says_why(previous, expected):
    first = pipeline_run("r1", **previous)
    found = by_task(cache_explain.explain(pipeline_run("r2", split_run="r1"), first))
    assert found["split"].outcome == "miss" and not found["split"].changes
    assert expected in found["split"].reason


def test_a_hit_after_a_code_version_change_warns_that_the_key_does_not_hold_the_library():
    first = pipeline_run("r1", code_version="v1")
    second = pipeline_run("r2", code_version="v2", outcomes={"split": "hit", "train": "hit"}, split_run="r1")
    found = by_task(cache_explain.explain(second, first))
    assert found["train"].cached and "--no-cache" in found["train"].note
    assert not by_task(cache_explain.explain(pipeline_run("r3", code_version="v1"), first))["split"].note


def test_an_input_from_a_task_that_never_caches_is_named():
    def run(run_id):
        record = pipeline_run(run_id, outcomes={"split": "hit"}, split_run="r0")
        record["tasks"][2]["inputs"]["schema"] = artifact(f"/runs/{run_id}/validate/schema", "validate")
        record["tasks"].insert(2, task("validate", "never"))
        return record

    found = by_task(cache_explain.explain(run("r2"), run("r1")))
    assert found["train"].parts() == {"input"}
    assert found["train"].reason == "input schema: new outputs of validate, which runs every time"


def test_records_are_written_once_and_the_last_one_of_the_same_pipeline_is_the_previous(tmp_path):
    store = FileStore(tmp_path / "store")
    times = [dt.datetime(2026, 1, 1, 0, 0, second, tzinfo=dt.timezone.utc) for second in range(3)]
    first, other, third = (
        pipeline_run("r1"),
        pipeline_run("o1"),
        pipeline_run("r3", seed=7, outcomes={"split": "hit"}, split_run="r1"),
    )
    other["pipeline"] = "monitor-pipeline"
    cache_explain.record_and_explain(store, cache_explain.record_key("m", times[0], "r1"), first)
    cache_explain.record_and_explain(store, cache_explain.record_key("m", times[1], "o1"), other)
    third_key = cache_explain.record_key("m", times[2], "r3")
    published = cache_explain.record_and_explain(store, third_key, third)
    found = by_task(cache_explain.explanations(published))
    assert found["train"].reason == "parameter seed: 42 → 7"  # against r1: the monitor run is another pipeline
    saved = cache_explain.load_run(store, "m", "r3")
    assert saved == published and saved["previous"] == "r1"
    with pytest.raises(AlreadyExists):
        cache_explain.save(store, third_key, third)
    lines = cache_explain.explain_lines(saved)
    assert lines[0] == "cache: 1 of 4 tasks from the cache (compared with the last run, r1)"
    assert any(line.split() == ["train", "ran", "parameter", "seed:", "42", "→", "7"] for line in lines)


def test_the_report_section_comes_before_the_lineage_and_is_escaped():
    record = pipeline_run("r2", seed="<7>")
    record["previous"] = "r1"
    record["explanation"] = [e.to_json() for e in cache_explain.explain(record, pipeline_run("r1"))]
    page = report.page("t", ["<h1>x</h1>", "<h2>Lineage</h2>", "<p>lineage</p>"])
    html = report.with_cache_section(page, record)
    assert html.index("<h2>Cache</h2>") < html.index("<h2>Lineage</h2>")
    assert "parameter seed: 42 → &lt;7&gt;" in html and "<7>" not in html
    assert report.with_cache_section(page, {"explanation": []}) == page


# The whole pipeline, five times: the cheapest real run (wine, one candidate) through the CLI.

MLOPS = str(Path(sys.executable).with_name("mlops"))
MODEL = "cache-wine"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_data):
    """Five runs in one folder (store, kfp.local's cache): first, seed changed, one data byte changed,
    the same again, the baseline schema with a kind tag that changes no kind. Each: (stdout, the run's
    cache record, its report)."""
    workdir = tmp_path_factory.mktemp("cache-explain")
    params = workdir / "params.yaml"
    params.write_text("candidates:\n  classification:\n    logistic_regression: {C: [1.0]}\n")
    data = workdir / "wine.csv"
    data.write_bytes(demo_data["wine"].read_bytes())
    store = FileStore(workdir / ".mlops")

    def run(*extra):
        command = [MLOPS, "run", "--data", str(data), "--target", "target", "--model-name", MODEL]
        command += ["--params", str(params), "--explain-cache", *extra]
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        report_path = Path(result.stdout.splitlines()[-1].split("report:", 1)[1].strip())
        record = cache_explain.load_run(store, MODEL, report_path.parent.name)
        return result.stdout, record, report_path.read_text(encoding="utf-8")

    first = run()
    second = run("--seed", "7")
    text = data.read_text(encoding="utf-8")
    row = text.splitlines()[5]
    changed = row.replace(row.split(",")[0], str(float(row.split(",")[0]) + 0.01), 1)  # one value: a byte or two
    data.write_text(text.replace(row, changed, 1), encoding="utf-8")
    third = run("--seed", "7")
    fourth = run("--seed", "7")
    schema = workdir / "tagged.pbtxt"
    baseline = store.read(f"models/{MODEL}/versions/000001/baseline/schema.pbtxt").decode("utf-8")
    alcohol = '  name: "alcohol"\n'
    assert alcohol in baseline and "kind:" not in baseline
    # alcohol is numeric anyway: the schema's text changes, the features do not
    schema.write_text(baseline.replace(alcohol, alcohol + '  annotation { tag: "kind: numeric" }\n', 1), "utf-8")
    fifth = run("--seed", "7", "--schema", str(schema))
    return {"first": first, "seed": second, "data": third, "same": fourth, "schema": fifth, "store": store}


def explained(record) -> dict:
    return by_task(cache_explain.explanations(record))


def cacheable(found: dict) -> dict:
    return {name: e for name, e in found.items() if e.outcome != "never"}


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_first_run_runs_every_task(runs):
    stdout, record, html = runs["first"]
    found = explained(record)
    assert {"split", "prepare", "expand-candidates", "select-best"} <= set(found)
    assert any(name.startswith("train[c01-") for name in found)
    assert all(not e.cached for e in found.values())
    assert found["ingest"].outcome == found["register"].outcome == "never"
    assert "cache: 0 of" in stdout and "(compared with no earlier run)" in stdout
    assert "<h2>Cache</h2>" in html


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_changed_parameter_is_named_for_the_tasks_that_take_it_and_the_others_are_cached(runs):
    stdout, record, html = runs["seed"]
    found = explained(record)
    assert record["previous"] == runs["first"][1]["run"]
    seed = cache_explain.Change("parameter", "seed", 42, 7)
    assert found["split"].cached and found["split"].reason == "same key as the last run"
    trains = [e for name, e in found.items() if name.startswith("train[")]
    # prepare takes the seed too: past the training budget it picks the sample the transform is fitted on
    for e in [found["prepare"], found["expand-candidates"], *trains]:
        assert not e.cached and seed in e.changes, e
    assert any(c.part == "parameter" and c.name == "seed" and c.through for c in found["select-best"].changes)
    assert "parameter seed: 42 → 7" in stdout and "parameter seed: 42 → 7" in html
    # the report in the store (for `mlops ui`) has the section too
    version = len([k for k in runs["store"].list(f"reports/{MODEL}/") if k.endswith(".html")])
    assert version >= 2
    assert "parameter seed: 42 → 7" in runs["store"].read(report.report_key(MODEL, 2)).decode("utf-8")


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_changed_data_byte_is_named_as_the_data_version(runs):
    stdout, record, _ = runs["data"]
    found = explained(record)
    (change,) = found["split"].changes
    assert not found["split"].cached and change.part == "data version" and change.before != change.after
    assert change.before.split("@")[0] == change.after.split("@")[0] == "wine"
    for name in ("prepare", "select-best"):
        assert not found[name].cached and "data version" in found[name].parts(), found[name]
        assert all(c.through == "split" for c in found[name].changes if c.part == "data version")
    # expand-candidates' key holds the search space, the task and the seed, no data version
    assert "data version" not in found["expand-candidates"].parts()
    assert "data version:" in stdout


@pytest.mark.e2e
@pytest.mark.tfdv
def test_the_same_run_again_changes_nothing_in_any_key(runs):
    stdout, record, _ = runs["same"]
    found = cacheable(explained(record))
    assert {"split", "prepare", "expand-candidates", "select-best"} <= set(found)
    # every cacheable task from the cache: prepare takes validate's schema as values (its digest and kind
    # tags), not as the artifact validate, which never caches, writes anew on every run
    for e in found.values():
        assert e.cached and e.reason == "same key as the last run", e
    assert f"cache: {len(found)} of {len(explained(record))} tasks from the cache" in stdout
    # one record per run, beside the run records, each naming the one before it
    keys = runs["store"].list(cache_explain.cache_prefix(MODEL))
    chain = [json.loads(runs["store"].read(key)) for key in keys]
    assert [r["previous"] for r in chain] == [None] + [r["run"] for r in chain[:-1]]


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_changed_schema_runs_prepare_and_training_again_and_is_named(runs):
    stdout, record, _ = runs["schema"]
    found = explained(record)
    assert found["split"].cached and found["expand-candidates"].cached  # neither takes the schema
    assert not found["prepare"].cached
    assert {c.name for c in found["prepare"].changes} == {"schema_sha256", "schema_kinds"}
    assert all(c.part == "parameter" and not c.through for c in found["prepare"].changes)
    for name in [name for name in found if name.startswith("train[")] + ["select-best"]:
        assert not found[name].cached and {c.through for c in found[name].changes} == {"prepare"}, found[name]
    assert 'parameter schema_kinds: {} → {"alcohol": "numeric"}' in stdout
