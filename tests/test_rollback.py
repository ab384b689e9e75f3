"""`mlops models rollback`: the champion moves back by compare-and-swap, on every store backend.

The race tests make two writers read the alias before either writes it (a barrier in a store
wrapper), then let them write in a chosen order: the interleaving a compare-and-swap exists for,
made certain instead of left to timing."""

import threading

import pytest
from click.testing import CliRunner

from mlops.cli.main import main
from mlops.store.registry import ModelRegistry, RollbackRefused, rollback_target

ALIAS_KEY = "models/m/aliases/champion.json"


def _registry(store, versions=3, champions=(1, 2, 3)) -> ModelRegistry:
    registry = ModelRegistry(store)
    for _ in range(versions):
        registry.register("m", {"model.joblib": b"x"}, metrics={}, lineage={})
    for version in champions:
        registry.set_alias("m", "champion", version, reason=f"promote v{version}", by="ci")
    return registry


class Interleaved:
    """A store in which the threads named in ``order`` all read the alias before any writes it,
    then write it in that order (each thread's first write waits for the previous thread's)."""

    def __init__(self, inner, order):
        self.inner, self.order = inner, list(order)
        self.read_by_all = threading.Barrier(len(order), timeout=60)
        self.turn = {name: threading.Event() for name in order}
        self.turn[order[0]].set()
        self.seen: set[str] = set()
        self.written: set[str] = set()

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)

    def get(self, key):
        result = self.inner.get(key)
        me = threading.current_thread().name
        if key == ALIAS_KEY and me in self.turn and me not in self.seen:
            self.seen.add(me)
            self.read_by_all.wait()
        return result

    def replace(self, key, data, *, if_match):
        me = threading.current_thread().name
        if key != ALIAS_KEY or me not in self.turn or me in self.written:
            return self.inner.replace(key, data, if_match=if_match)
        self.written.add(me)
        assert self.turn[me].wait(60)
        try:
            return self.inner.replace(key, data, if_match=if_match)
        finally:
            later = self.order[self.order.index(me) + 1 :]
            if later:
                self.turn[later[0]].set()


def _race(store, jobs: dict):
    """Run each job (name -> function of a registry) in its own thread; name -> result or exception."""
    racing = Interleaved(store, list(jobs))
    outcomes: dict = {}

    def run(name, job):
        try:
            outcomes[name] = job(ModelRegistry(racing))
        except Exception as error:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[name] = error

    threads = [threading.Thread(target=run, args=(name, job), name=name) for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(outcomes) == set(jobs)
    return outcomes


def _moves(registry):
    return [
        (m["previous"], m["version"], m.get("kind", "move"), m["reason"])
        for m in registry.alias_history("m", "champion")
    ]


def test_two_concurrent_rollbacks_one_wins_the_other_is_refused(store):
    registry = _registry(store)
    outcomes = _race(
        store,
        {
            "first": lambda r: r.rollback("m", reason="v3 is slow", by="alice"),
            "second": lambda r: r.rollback("m", reason="v3 is wrong", by="bob"),
        },
    )
    assert outcomes["first"] == (3, 2)
    refused = outcomes["second"]
    assert isinstance(refused, RollbackRefused)
    assert (
        str(refused)
        == "m@champion moved while rolling back (it was v3, it is now v2): rollback refused, nothing changed"
    )
    assert registry.champion("m").version == 2  # rolled back once, not twice (to v1)
    assert _moves(registry)[3:] == [(3, 2, "rollback", "v3 is slow")]
    assert registry.alias_history("m", "champion")[-1]["by"] == "alice"


def test_a_promotion_that_lands_first_refuses_the_rollback(store):
    registry = _registry(store, versions=4)
    outcomes = _race(
        store,
        {
            "promote": lambda r: r.set_alias("m", "champion", 4, reason="mlops models promote"),
            "rollback": lambda r: r.rollback("m", reason="v3 is slow"),
        },
    )
    assert outcomes["promote"] == 3 and isinstance(outcomes["rollback"], RollbackRefused)
    assert "(it was v3, it is now v4)" in str(outcomes["rollback"])
    assert registry.champion("m").version == 4
    assert _moves(registry)[3:] == [(3, 4, "move", "mlops models promote")]


def test_a_rollback_that_lands_first_is_kept_and_the_promotion_follows_it(store):
    """`models promote` is unconditional: it re-reads after losing the swap and moves on top."""
    registry = _registry(store, versions=4)
    outcomes = _race(
        store,
        {
            "rollback": lambda r: r.rollback("m", reason="v3 is slow"),
            "promote": lambda r: r.set_alias("m", "champion", 4, reason="mlops models promote"),
        },
    )
    assert outcomes == {"rollback": (3, 2), "promote": 2}
    assert _moves(registry)[3:] == [(3, 2, "rollback", "v3 is slow"), (2, 4, "move", "mlops models promote")]


def test_rollback_to_a_named_version_and_the_refusals(store):
    registry = _registry(store, versions=4, champions=(1,))
    with pytest.raises(RollbackRefused, match=r"^m@champion has no previous version to roll back to \(v1 is"):
        registry.rollback("m", reason="no")
    with pytest.raises(Exception, match=r"^model m@9 not found in "):
        registry.rollback("m", to=9, reason="no")
    with pytest.raises(RollbackRefused, match="already points to v1"):
        registry.rollback("m", to=1, reason="no")
    assert registry.rollback("m", to=3, reason="known good") == (1, 3)
    assert registry.champion("m").version == 3
    assert registry.rollback("m", reason="undo") == (3, 1)
    with pytest.raises(RollbackRefused, match="has no champion to roll back"):
        registry.rollback("other", reason="no")
    assert len(registry.alias_history("m", "champion")) == 3  # refusals changed nothing


@pytest.mark.parametrize(
    "moves, target",
    [
        ([], None),
        ([(1, None)], None),
        ([(1, None), (2, None), (3, None)], 2),
        ([(1, None), (2, None), (3, None), (2, "rollback")], 1),  # a second rollback goes further back
        ([(1, None), (2, None), (2, None)], 1),  # promoting the champion again is not a move
        ([(1, None), (2, None), (1, "rollback"), (3, None)], 1),
        ([(1, None), (5, "rollback")], 1),  # --to a version that was never champion
    ],
)
def test_the_rollback_target_is_the_champion_before_the_current_one_arrived(moves, target):
    history = [{"version": version, **({"kind": kind} if kind else {})} for version, kind in moves]
    assert rollback_target(history) == target


# -- The command ------------------------------------------------------------------------------------


@pytest.fixture
def mlops(file_store, monkeypatch):
    monkeypatch.setenv("MLOPS_ACTOR", "alice")
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [*args, "--store", file_store.uri])


def test_the_command_rolls_back_and_the_history_says_who_when_and_why(mlops, file_store):
    registry = _registry(file_store)
    result = mlops("models", "rollback", "m", "--reason", "v3 misclassifies new stores")
    assert result.exit_code == 0 and result.output == "m@champion: v3 -> v2 (rollback)\n", result.output
    assert mlops("models", "rollback", "m", "--to", "3", "--reason", "fixed upstream").output == (
        "m@champion: v2 -> v3 (rollback)\n"
    )
    last = registry.alias_history("m", "champion")[-2:]
    assert [(m["by"], m["kind"], m["previous"], m["version"], m["reason"]) for m in last] == [
        ("alice", "rollback", 3, 2, "v3 misclassifies new stores"),
        ("alice", "rollback", 2, 3, "fixed upstream"),
    ]
    assert all(m["at"] for m in last)
    table = mlops("models", "history", "m").output.splitlines()
    assert table[0].split() == ["TIME", "BY", "KIND", "FROM", "TO", "REASON"]
    assert table[-1].split()[1:] == ["alice", "rollback", "v2", "->", "v3", "fixed", "upstream"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--to", "9"), "Error: model m@9 not found in "),
        (("--to", "1"), "Error: m@champion already points to v1: nothing to roll back"),
        ((), "Error: m@champion has no previous version to roll back to (v1 is the first in its history)"),
    ],
)
def test_the_command_refuses_in_one_line(mlops, file_store, args, message):
    _registry(file_store, champions=(1,))
    result = mlops("models", "rollback", "m", *args, "--reason", "why")
    assert result.exit_code == 1 and result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert ModelRegistry(file_store).champion("m").version == 1


def test_the_command_refuses_in_one_line_when_the_champion_moves_meanwhile(mlops, file_store, monkeypatch):
    """Someone promotes between the rollback's read and its write."""
    _registry(file_store, versions=4)

    class PromotedMeanwhile:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, attribute):
            return getattr(self.inner, attribute)

        def get(self, key):
            result = self.inner.get(key)
            if key == ALIAS_KEY:
                ModelRegistry(self.inner).set_alias("m", "champion", 4, reason="mlops models promote", by="bob")
            return result

    monkeypatch.setattr(
        "mlops.cli.models._registry", lambda uri, role="reader": ModelRegistry(PromotedMeanwhile(file_store))
    )
    result = mlops("models", "rollback", "m", "--reason", "v3 is slow")
    assert result.exit_code == 1 and result.output == (
        "Error: m@champion moved while rolling back (it was v3, it is now v4): rollback refused, nothing changed\n"
    )
    assert [m.get("kind", "move") for m in ModelRegistry(file_store).alias_history("m", "champion")] == ["move"] * 4


def test_the_reason_is_required(mlops, file_store):
    _registry(file_store)
    assert mlops("models", "rollback", "m").exit_code == 2
    assert "--reason must say why" in mlops("models", "rollback", "m", "--reason", " ").output
