"""Property-based fuzzing of what a user controls (Hypothesis): data files (CSV bytes, column names,
cell values, encodings), URIs, names and NAME@VERSION selectors, params and policy YAML, CLI flags.

Every example ends in one of two outcomes: success, or a non-zero exit with ONE line on stderr, no
traceback, no control character, nothing registered, and no byte of a secret printed. `make test`
runs a small budget (the "default" profile, 15 examples a test); `make fuzz` runs the "fuzz"
profile (HYPOTHESIS_PROFILE=fuzz, FUZZ_EXAMPLES a test, 400 by default).
"""

import io
import os
import string
import tempfile

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops.cli.main import main as cli_main
from mlops.data.uris import carries_secret, redact
from mlops.errors import MlopsError
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("default", max_examples=15, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Text as a user may type or a file may hold: any code point, control characters and bidi overrides
# included (surrogates cannot be encoded, so they cannot be in a file or an argv either).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
SECRET = st.text(string.ascii_letters + string.digits + "/#?@:%+-_.!~*'()$&,;= ", min_size=6, max_size=24).filter(
    lambda s: s.strip() == s and len(set(s)) > 3
)


def _clean_exit(result, store_before: list[str] | None = None, store: FileStore | None = None) -> None:
    """Success, or a non-zero exit with one printable line on stderr and no traceback."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert all(c.isprintable() or c == "\n" for c in result.stderr), repr(result.stderr)
    if result.exit_code == 2:  # misuse: click's usage (or the help), then its one "Error:" line
        lines = result.stderr.strip().splitlines()
        assert lines and (lines[-1].startswith("Error: ") or lines[0].startswith("Usage: ")), repr(result.stderr)
    elif result.exit_code != 0:  # a domain failure: one line
        assert len(result.stderr.strip().splitlines()) == 1, repr(result.stderr)
        if store is not None:
            assert store.list("") == store_before, "a failed command changed the store"


@pytest.fixture(scope="module")
def registry_store(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("fuzz") / "store")
    ModelRegistry(store).register("wine", {"model.skops": b"m"}, metrics={"test_f1_macro": 0.9}, lineage={})
    return store


def _invoke(*args):
    return CliRunner().invoke(cli_main, [str(a) for a in args], catch_exceptions=True)


# -- Data files -------------------------------------------------------------------------------------


@given(data=st.binary(max_size=400))
def test_any_bytes_as_a_data_file(tmp_path_factory, data):
    work = tmp_path_factory.mktemp("bytes")
    (work / "data.csv").write_bytes(data)
    store = FileStore(work / "store")
    result = _invoke("data", "push", work / "data.csv", "--name", "fuzz", "--store", store.uri)
    _clean_exit(result, [], store)


@given(
    columns=st.lists(TEXT, min_size=1, max_size=4),
    cells=st.lists(st.one_of(TEXT, st.floats(allow_nan=True), st.integers(), st.none()), min_size=1, max_size=24),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
)
def test_any_table_in_any_encoding(tmp_path_factory, columns, cells, encoding):
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for start in range(0, len(cells), len(columns)):
        writer.writerow(["" if c is None else c for c in cells[start : start + len(columns)]])
    work = tmp_path_factory.mktemp("table")
    (work / "data.csv").write_bytes(buffer.getvalue().encode(encoding, errors="replace"))
    store = FileStore(work / "store")
    result = _invoke("data", "push", work / "data.csv", "--name", "fuzz", "--store", store.uri)
    _clean_exit(result, [], store)
    if result.exit_code == 0:
        shown = _invoke("data", "show", "fuzz@latest", "--store", store.uri)
        _clean_exit(shown)
        assert shown.exit_code == 0 and all(c.isprintable() or c == "\n" for c in shown.stdout)


# -- URIs and their secrets -------------------------------------------------------------------------


@given(secret=SECRET, user=st.sampled_from(["alice", "", "a:b"]), scheme=st.sampled_from(["http", "https", "s3"]))
def test_no_byte_of_a_secret_survives_redaction(secret, user, scheme):
    uri = f"{scheme}://{user}:{secret}@example.com/data.csv"
    shown = redact(uri)
    assert carries_secret(uri)
    assert secret not in shown and (len(secret) < 8 or secret[:8] not in shown)


@given(secret=SECRET)
def test_a_failed_download_never_prints_its_secret(tmp_path_factory, secret):
    store = FileStore(tmp_path_factory.mktemp("uri") / "store")
    result = _invoke("data", "push", f"http://alice:{secret}@127.0.0.1:1/x.csv", "--name", "n", "--store", store.uri)
    _clean_exit(result, [], store)
    assert result.exit_code != 0 and secret not in result.stdout + result.stderr


# -- Names and selectors ----------------------------------------------------------------------------


@given(ref=TEXT.filter(lambda s: not s.startswith("-")))
def test_any_selector_for_models_and_data(registry_store, ref):
    before = registry_store.list("")
    for args in (("models", "show", ref), ("data", "show", ref), ("models", "promote", ref, "--alias", "x")):
        _clean_exit(_invoke(*args, "--store", registry_store.uri), before, registry_store)


@given(name=TEXT.filter(lambda s: not s.startswith("-")))
def test_any_data_set_name(tmp_path_factory, wine_frame, name):
    work = tmp_path_factory.mktemp("name")
    wine_frame.head(20).to_csv(work / "wine.csv", index=False)
    store = FileStore(work / "store")
    _clean_exit(_invoke("data", "push", work / "wine.csv", "--name", name, "--store", store.uri), [], store)


# -- Params and policy YAML -------------------------------------------------------------------------

YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)


def _as_yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True)


@given(
    text=st.one_of(
        TEXT,
        YAML_VALUES.map(_as_yaml),
        st.fixed_dictionaries(
            {"metric": st.one_of(TEXT, st.sampled_from(["auto", "accuracy"])), "candidates": YAML_VALUES}
        ).map(_as_yaml),
    )
)
def test_any_params_file(tmp_path_factory, text):
    from mlops.stages.search_space import load_search_space

    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_search_space(path)
    except MlopsError as error:
        assert "\n" not in str(error) and all(c.isprintable() for c in str(error))


@given(text=st.one_of(TEXT, YAML_VALUES.map(_as_yaml)))
def test_any_policy_text(text):
    from mlops.stages.monitor import parse_policy_text

    try:
        parse_policy_text(text)
    except MlopsError as error:
        assert "\n" not in str(error) and all(c.isprintable() for c in str(error))


# -- CLI flags --------------------------------------------------------------------------------------


@given(
    args=st.lists(
        st.one_of(TEXT, st.sampled_from(["--json", "--store", "--alias", "--name", "-h", "list", "show", "tag"])),
        max_size=5,
    ),
    group=st.sampled_from(["models", "data", "monitor", "schema"]),
)
def test_any_flags_to_the_read_only_commands(registry_store, args, group):
    if group == "monitor" and "history" not in args:
        args = ["history", *args]  # a bare `monitor` would start a run
    before = registry_store.list("")
    runner = CliRunner(env={"MLOPS_STORE": registry_store.uri})
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:  # `schema pull` writes into the working directory
        os.chdir(scratch)
        try:
            result = runner.invoke(cli_main, [group, *args], catch_exceptions=True)
        finally:
            os.chdir(here)
    _clean_exit(result, before, registry_store)
