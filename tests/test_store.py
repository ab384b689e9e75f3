"""The store interface and the registry: one suite, run against every backend.

The `store` fixture is parametrized over the backends; the MinIO one starts a
real server (see conftest). Behaviour must be identical.
"""

import threading

import pytest

from mlops.store import AlreadyExists, NotFound, PreconditionFailed, StoreError, open_store
from mlops.store.fs import FileStore
from mlops.store.registry import ModelRegistry


def test_put_get_list_delete(store):
    etag = store.put("a/b/one.json", b"1")
    assert store.get("a/b/one.json") == (b"1", etag)
    store.put("a/b/two.json", b"2")
    store.put("a/c.json", b"3")
    assert store.list("a/b/") == ["a/b/one.json", "a/b/two.json"]
    assert store.list("a/") == ["a/b/one.json", "a/b/two.json", "a/c.json"]
    assert store.list("zzz/") == []
    store.delete("a/b/one.json")
    store.delete("a/b/one.json")  # absent: not an error
    assert not store.exists("a/b/one.json")
    with pytest.raises(NotFound):
        store.get("a/b/one.json")


def test_create_is_conditional(store):
    store.create("claims/1", b"first")
    with pytest.raises(AlreadyExists):
        store.create("claims/1", b"second")
    assert store.read("claims/1") == b"first"


def test_replace_is_compare_and_swap(store):
    etag = store.put("alias.json", b"v1")
    new_etag = store.replace("alias.json", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.replace("alias.json", b"v3", if_match=etag)  # stale etag
    assert store.get("alias.json") == (b"v2", new_etag)
    with pytest.raises(NotFound):
        store.replace("missing.json", b"x", if_match=etag)


def test_concurrent_creates_have_exactly_one_winner(store):
    winners, barrier = [], threading.Barrier(8)

    def claim(index):
        barrier.wait()
        try:
            store.create("race/claim", str(index).encode())
            winners.append(index)
        except AlreadyExists:
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(winners) == 1 and store.read("race/claim") == str(winners[0]).encode()


def test_registry_versions_aliases_and_tags(store):
    registry = ModelRegistry(store)
    first = registry.register(
        "wine",
        {"model.joblib": b"m1"},
        metrics={"test_f1": 0.9},
        lineage={"data": {"content_hash": "abc"}},
        tags={"team": "a"},
    )
    second = registry.register("wine", {"model.joblib": b"m2"}, metrics={"test_f1": 0.95}, lineage={})
    assert (first.version, second.version) == (1, 2)
    assert registry.set_alias("wine", "champion", 1) is None
    assert registry.set_alias("wine", "champion", 2) == 1
    assert registry.resolve("wine@champion").version == 2
    assert registry.resolve("wine@latest").version == 2
    assert registry.resolve("wine@1").tags == {"team": "a"}
    registry.set_tags("wine", 1, {"team": None, "stage": "archived"})
    assert registry.get("wine", 1).tags == {"stage": "archived"}
    assert registry.read_file(registry.get("wine", 1), "model.joblib") == b"m1"
    listed = registry.versions("wine")
    assert [v.aliases for v in listed] == [[], ["champion"]]
    assert listed[0].to_json()["data_hash"] == "abc"
    assert registry.names() == ["wine"]


def test_registry_rejects_bad_names_and_unknown_versions(store):
    registry = ModelRegistry(store)
    with pytest.raises(StoreError, match="invalid model name '../x'"):
        registry.register("../x", {"model.joblib": b""}, metrics={}, lineage={})
    with pytest.raises(NotFound, match="model wine@7 not found"):
        registry.get("wine", 7)
    with pytest.raises(NotFound, match="no alias 'champion'"):
        registry.resolve("wine@champion")


def test_a_version_without_manifest_is_invisible_and_its_number_is_not_reused(store):
    registry = ModelRegistry(store)
    # A writer that died after claiming number 1 and writing its model.
    store.create("models/wine/versions/000001/claim.json", b"{}")
    store.put("models/wine/versions/000001/model.joblib", b"half")
    assert registry.versions("wine") == []
    assert registry.register("wine", {"model.joblib": b"m"}, metrics={}, lineage={}).version == 2
    assert [v.version for v in registry.versions("wine")] == [2]


def test_an_overwritten_model_file_is_never_used(store, overwrite, capsys):
    registry = ModelRegistry(store)
    version = registry.register("wine", {"model.joblib": b"good"}, metrics={}, lineage={})
    overwrite(store, "models/wine/versions/000001/model.joblib", b"evil")
    if isinstance(store, FileStore):  # the bytes changed: refused by the manifest's sha256
        with pytest.raises(StoreError, match="does not match its recorded sha256"):
            registry.read_file(version, "model.joblib")
    else:  # MinIO kept the original (a locked older version): that is what is read, and a line says why
        assert registry.read_file(version, "model.joblib") == b"good"
        assert "models/wine/versions/000001/model.joblib" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key",
    [
        "models/wine/versions/000001/manifest.json",  # a model version's files
        "data/wine/versions/0123abcd/rows-1.parquet",  # a data version's files
        "monitor/wine/log/20260101T000000.000000Z-0123abcd.json",  # the monitor log
    ],
)
def test_an_immutable_key_is_written_once_by_every_writer_of_the_store(store, key):
    store.put(key, b"first")  # a free key: put creates it
    with pytest.raises(AlreadyExists):
        store.put(key, b"second")
    with pytest.raises(AlreadyExists):
        store.create(key, b"second")
    data, etag = store.get(key)
    with pytest.raises(StoreError, match="written once and cannot be replaced"):
        store.replace(key, b"second", if_match=etag)
    assert data == b"first" and store.read(key) == b"first"
    # What is not immutable stays writable: aliases, tags, reports.
    for mutable in ("models/wine/aliases/champion.json", "models/wine/tags/000001.json", "reports/wine/v000001.html"):
        store.put(mutable, b"1")
        store.put(mutable, b"2")
        assert store.read(mutable) == b"2"


def test_concurrent_registrations_get_distinct_versions(store):
    registry, barrier, versions = ModelRegistry(store), threading.Barrier(8), []

    def register(index):
        barrier.wait()
        versions.append(
            registry.register(
                "race", {"model.joblib": str(index).encode()}, metrics={}, lineage={"writer": index}
            ).version
        )

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(versions) == list(range(1, 9))
    published = registry.versions("race")
    assert sorted(v.lineage["writer"] for v in published) == list(range(8))


def test_open_store_uris(tmp_path, monkeypatch):
    assert open_store(tmp_path.as_uri()).uri == tmp_path.as_uri()
    assert open_store(str(tmp_path)).uri == tmp_path.as_uri()
    monkeypatch.setenv("MLOPS_STORE", (tmp_path / "env").as_uri())
    assert open_store(None).uri == (tmp_path / "env").as_uri()
    with pytest.raises(StoreError, match="unsupported store URI 'gs://x'"):
        open_store("gs://x")
    with pytest.raises(StoreError, match="file:///absolute/path"):
        open_store("file://host/x")


def test_concurrent_tag_updates_lose_nothing(store):
    """Compare-and-swap: eight writers merging different tags all land."""
    registry = ModelRegistry(store)
    registry.register("wine", {"model.joblib": b"m"}, metrics={}, lineage={})
    barrier = threading.Barrier(8)

    def tag(index):
        barrier.wait()
        registry.set_tags("wine", 1, {f"writer{index}": str(index)})

    threads = [threading.Thread(target=tag, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert registry.get("wine", 1).tags == {f"writer{i}": str(i) for i in range(8)}


def test_large_objects_have_the_etag_that_get_reports(store):
    """The file store hashes a large object beside its write: the etag must still be the object's."""
    data = bytes(range(256)) * 8192  # 2 MiB
    created = store.create("big/created", data)
    put = store.put("big/put", data[::-1])
    assert store.get("big/created") == (data, created)
    assert store.get("big/put") == (data[::-1], put)
    assert store.read("big/created") == data
    assert store.exists("big/created") and not store.exists("big") and not store.exists("big/other")


def test_a_staged_object_is_published_by_a_conditional_create_or_dropped(store):
    """Bytes written before their key is known (a data file named by its sha256): the same
    conditional create, and nothing left behind when they are not published."""
    import hashlib

    data = bytes(range(256)) * 12_000  # 3 MB, written in pieces as a Parquet writer does
    with store.staged() as staged:
        for start in range(0, len(data), 1 << 20):
            staged.file.write(data[start : start + (1 << 20)])
        assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.file.tell() == len(data)
        etag = staged.create(f"rows/{staged.sha256}")
    assert store.get(f"rows/{hashlib.sha256(data).hexdigest()}") == (data, etag)

    store.put("rows/taken", b"first")
    with pytest.raises(AlreadyExists), store.staged() as staged:
        staged.file.write(b"second")
        staged.create("rows/taken")
    assert store.read("rows/taken") == b"first"

    with store.staged() as staged:
        staged.file.write(b"never published")
    assert store.list("") == sorted([f"rows/{hashlib.sha256(data).hexdigest()}", "rows/taken"])
    if hasattr(store, "root"):  # the file store's temporary files are gone too
        assert sorted(p.name for p in store.root.iterdir()) == ["rows"]


def test_a_local_file_holds_the_object_and_a_copy_is_removed_after(store):
    """local_file: a path a seeking reader (Parquet) can open, with the object's bytes; a temporary copy
    (a backend that keeps no files) is gone on exit; an absent key is NotFound."""
    import os

    store.create("data/x/versions/1/rows-1.parquet", b"rows" * 1000)
    with store.local_file("data/x/versions/1/rows-1.parquet") as path:
        with open(path, "rb") as handle:
            assert handle.read() == b"rows" * 1000
    if not isinstance(store, FileStore):
        assert not os.path.exists(path)
    with pytest.raises(NotFound), store.local_file("data/x/versions/1/missing.parquet"):
        pass


def test_the_s3_store_streams_an_object_into_a_local_file(tmp_path):
    """S3Store.get_file (behind local_file) writes the object's blocks as they arrive, never the whole
    object in memory, and reads an immutable key's version as first written."""
    from types import SimpleNamespace

    from mlops.store.s3 import S3Store

    blocks = [b"a" * (1 << 20), b"b" * (1 << 20), b"c" * 10]
    asked = {}

    class Response:
        headers = {"ETag": '"e1"'}

        def stream(self, size):
            asked["block"] = size
            yield from blocks

        def close(self):
            asked["closed"] = True

        def release_conn(self):
            pass

    class Client:
        def list_objects(self, bucket, prefix, include_version=False):
            return [SimpleNamespace(object_name=prefix, version_id="v1", is_delete_marker=False, is_latest=True)]

        def get_object(self, bucket, name, version_id=None):
            asked.update(bucket=bucket, name=name, version_id=version_id)
            return Response()

    store = S3Store("bucket", "store", client=Client(), endpoint="stub")
    with store.local_file("data/x/versions/1/rows-1.parquet") as path:
        with open(path, "rb") as handle:
            assert handle.read() == b"".join(blocks)
    assert asked == {
        "bucket": "bucket",
        "name": "store/data/x/versions/1/rows-1.parquet",
        "version_id": "v1",
        "block": 1 << 20,
        "closed": True,
    }
