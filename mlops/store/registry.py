"""The model registry: named models, numbered immutable versions, movable aliases.

Layout under the store (all JSON is UTF-8, keys sorted):

    models/<name>/versions/<NNNNNN>/claim.json     claims the number (conditional create)
    models/<name>/versions/<NNNNNN>/<files...>     the model and its lineage record
    models/<name>/versions/<NNNNNN>/manifest.json  written last: makes the version visible
    models/<name>/tags/<NNNNNN>.json               mutable tags (compare-and-swap)
    models/<name>/aliases/<alias>.json             {"version": N, "history": [...]} (compare-and-swap)

A writer that dies before the manifest leaves a claimed number without a
manifest: it is never listed, and the number is not reused (like a database
sequence). Readers only trust manifests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

from mlops import config
from mlops.store.base import AlreadyExists, NotFound, ObjectStore, PreconditionFailed, StoreError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_CLAIM_ATTEMPTS = 1000
MAX_ALIAS_HISTORY = 1000
# "any current value": set_alias without a compare-and-swap expectation
ANY = object()


class AliasMoved(PreconditionFailed):
    """A compare-and-swap of an alias found it pointing somewhere other than expected."""

    def __init__(self, name: str, alias: str, expected, current):
        self.expected, self.current = expected, current
        shown = lambda v: f"v{v}" if v is not None else "nothing"  # noqa: E731
        super().__init__(f"{name}@{alias} points to {shown(current)}, not {shown(expected)} as expected")


class RollbackRefused(StoreError):
    """A rollback that cannot happen: nothing to roll back to, or the alias moved while it was decided."""


def validate_name(kind: str, name: str) -> str:
    """Names become object-key segments, so keep them to a safe alphabet."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise StoreError(
            f"invalid {kind} name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def dumps(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, indent=2, default=str).encode("utf-8")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelVersion:
    name: str
    version: int
    created_at: str
    metrics: dict
    files: dict  # file name -> sha256
    lineage: dict
    tags: dict = field(default_factory=dict)
    aliases: list = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": sorted(self.aliases),
            "metrics": self.metrics,
            "tags": self.tags,
            "data_hash": self.lineage.get("data", {}).get("content_hash"),
            "data_version": self.lineage.get("data", {}).get("ref"),
            "created_at": self.created_at,
            "files": self.files,
            "lineage": self.lineage,
        }


class ModelRegistry:
    """Register, list and alias model versions in an ObjectStore."""

    def __init__(self, store: ObjectStore):
        self.store = store

    # Keys --------------------------------------------------------------
    @staticmethod
    def _version_prefix(name: str, version: int) -> str:
        return f"models/{name}/versions/{version:06d}/"

    # Writing -----------------------------------------------------------
    def register(
        self, name: str, files: dict[str, bytes], *, metrics: dict, lineage: dict, tags: dict | None = None
    ) -> ModelVersion:
        """Store ``files`` as the next version of ``name`` and publish it.

        The version number is claimed with a conditional create, so concurrent
        registrations get distinct numbers; the manifest is written last, so a
        crash before it leaves nothing visible.
        """
        validate_name("model", name)
        if "manifest.json" in files or "claim.json" in files:
            raise StoreError("'manifest.json' and 'claim.json' are reserved file names")
        version = self._claim_next_version(name)
        prefix = self._version_prefix(name, version)
        for filename, data in sorted(files.items()):
            self.store.put(prefix + filename, data)
        created_at = utc_now()
        manifest = {
            "name": name,
            "version": version,
            "created_at": created_at,
            "metrics": metrics,
            "files": {filename: hashlib.sha256(data).hexdigest() for filename, data in sorted(files.items())},
            "lineage": lineage,
        }
        self.store.create(prefix + "manifest.json", dumps(manifest))
        if tags:
            self.set_tags(name, version, tags)
        return ModelVersion(name, version, created_at, metrics, manifest["files"], lineage, dict(tags or {}))

    def _claim_next_version(self, name: str) -> int:
        claim = dumps({"claimed_at": utc_now(), "claim_id": uuid.uuid4().hex})
        candidate = self._highest_claimed(name) + 1
        for _ in range(MAX_CLAIM_ATTEMPTS):
            try:
                self.store.create(self._version_prefix(name, candidate) + "claim.json", claim)
                return candidate
            except AlreadyExists:
                candidate += 1
        raise StoreError(f"could not claim a version number for model {name!r}")

    def _highest_claimed(self, name: str) -> int:
        numbers = [0]
        for key in self.store.list(f"models/{name}/versions/"):
            segment = key.split("/")[3]
            if segment.isdigit():
                numbers.append(int(segment))
        return max(numbers)

    def set_tags(self, name: str, version: int, tags: dict) -> dict:
        """Merge ``tags`` into the version's tags (a value of None removes a tag)."""
        self.get(name, version)  # the version must be published
        key = f"models/{name}/tags/{version:06d}.json"

        def merge(current: dict) -> dict:
            merged = {**current, **tags}
            return {k: v for k, v in merged.items() if v is not None}

        return self._compare_and_swap(key, merge)

    def set_alias(
        self, name: str, alias: str, version: int, *, expected=ANY, reason: str = "", by: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version``; return the version it pointed at before.

        With ``expected`` (a version number, or None for "no alias yet") the move
        is a compare-and-swap: it happens only if the alias still points there,
        else :class:`AliasMoved` says where it points now. That is how a run
        promotes only over the champion it was evaluated against. Every move is
        kept in the alias's history (version, when, why, and who: ``by``, by
        default MLOPS_ACTOR or the OS user).
        """
        validate_name("alias", alias)
        self.get(name, version)
        previous: dict = {}
        by = by or config.actor()

        def move(current: dict) -> dict:
            previous.clear()
            previous.update(current)
            if expected is not ANY and current.get("version") != expected:
                raise AliasMoved(name, alias, expected, current.get("version"))
            return _moved(current, version, _entry(current, version, reason, by))

        self._compare_and_swap(self._alias_key(name, alias), move)
        return previous.get("version")

    def rollback(
        self,
        name: str,
        alias: str = config.CHAMPION_ALIAS,
        *,
        to: int | None = None,
        reason: str,
        by: str | None = None,
    ) -> tuple[int, int]:
        """Move ``alias`` back, by compare-and-swap; return (the version it left, the version it points to now).

        Without ``to`` it goes to the version the alias pointed at before its
        current version arrived (:func:`rollback_target`: repeated rollbacks walk
        further back instead of flipping between two versions). The alias is
        read once and replaced only if its record is still the one that was read
        (the store's conditional write on its etag), never retried: a promotion
        or another rollback in between makes this one fail with
        :class:`RollbackRefused`, and nothing changes. The move is recorded in
        the history with ``kind: rollback``, who, when and why.
        """
        validate_name("model", name)
        validate_name("alias", alias)
        key = self._alias_key(name, alias)
        try:
            data, etag = self.store.get(key)
        except NotFound:
            raise RollbackRefused(f"model {name!r} has no {alias} to roll back") from None
        current = json.loads(data)
        if to is None:
            to = rollback_target(current.get("history") or [])
            if to is None:
                raise RollbackRefused(
                    f"{name}@{alias} has no previous version to roll back to (v{current['version']} is the "
                    "first in its history); name a version with --to VERSION"
                )
        self.get(name, to)  # an unknown version: NotFound, one line
        if to == current["version"]:
            raise RollbackRefused(f"{name}@{alias} already points to v{to}: nothing to roll back")
        entry = {**_entry(current, to, reason, by or config.actor()), "kind": "rollback"}
        try:
            self.store.replace(key, dumps(_moved(current, to, entry)), if_match=etag)
        except (PreconditionFailed, NotFound):
            try:
                now = f"v{json.loads(self.store.read(key))['version']}"
            except NotFound:
                now = "nothing"
            raise RollbackRefused(
                f"{name}@{alias} moved while rolling back (it was v{current['version']}, it is now {now}): "
                "rollback refused, nothing changed"
            ) from None
        return current["version"], to

    @staticmethod
    def _alias_key(name: str, alias: str) -> str:
        return f"models/{name}/aliases/{alias}.json"

    def alias_history(self, name: str, alias: str) -> list[dict]:
        """Every move of ``alias`` (oldest first): version, time, previous version, reason, who, and
        ``kind: rollback`` for a rollback."""
        validate_name("alias", alias)
        try:
            record = json.loads(self.store.read(f"models/{name}/aliases/{alias}.json"))
        except NotFound:
            return []
        return record.get("history") or [
            {"version": record["version"], "at": record.get("updated_at"), "previous": None, "reason": ""}
        ]

    def _compare_and_swap(self, key: str, update, attempts: int = 100) -> dict:
        """Apply ``update`` (current dict -> new dict) atomically; exceptions from it abort."""
        for _ in range(attempts):
            try:
                data, etag = self.store.get(key)
            except NotFound:
                new = update({})
                try:
                    self.store.create(key, dumps(new))
                    return new
                except AlreadyExists:
                    continue
            new = update(json.loads(data))
            try:
                self.store.replace(key, dumps(new), if_match=etag)
                return new
            except (PreconditionFailed, NotFound):
                continue
        raise StoreError(f"too much contention updating {key}")

    # Reading -----------------------------------------------------------
    def names(self) -> list[str]:
        return sorted({key.split("/")[1] for key in self.store.list("models/") if key.endswith("/manifest.json")})

    def versions(self, name: str) -> list[ModelVersion]:
        validate_name("model", name)
        aliases = self.aliases(name)
        result = []
        for key in self.store.list(f"models/{name}/versions/"):
            if key.endswith("/manifest.json"):
                result.append(self._load(name, int(key.split("/")[3]), aliases))
        return result

    def get(self, name: str, version: int) -> ModelVersion:
        validate_name("model", name)
        return self._load(name, version, self.aliases(name))

    def _load(self, name: str, version: int, aliases: dict) -> ModelVersion:
        try:
            manifest = json.loads(self.store.read(self._version_prefix(name, version) + "manifest.json"))
        except NotFound:
            raise NotFound(f"model {name}@{version} not found in {self.store.uri}") from None
        try:
            tags = json.loads(self.store.read(f"models/{name}/tags/{version:06d}.json"))
        except NotFound:
            tags = {}
        return ModelVersion(
            name=name,
            version=version,
            created_at=manifest["created_at"],
            metrics=manifest["metrics"],
            files=manifest["files"],
            lineage=manifest["lineage"],
            tags=tags,
            aliases=[alias for alias, target in aliases.items() if target == version],
        )

    def aliases(self, name: str) -> dict[str, int]:
        validate_name("model", name)
        result = {}
        for key in self.store.list(f"models/{name}/aliases/"):
            alias = key.rsplit("/", 1)[1].removesuffix(".json")
            result[alias] = json.loads(self.store.read(key))["version"]
        return result

    def resolve(self, ref: str) -> ModelVersion:
        """``name@3``, ``name@champion`` or ``name`` (the newest version)."""
        name, _, selector = ref.partition("@")
        if not selector or selector == "latest":
            versions = self.versions(name)
            if not versions:
                raise NotFound(f"model {name!r} has no versions in {self.store.uri}")
            return versions[-1]
        if selector.isdigit():
            return self.get(name, int(selector))
        validate_name("alias", selector)
        target = self.aliases(name).get(selector)
        if target is None:
            raise NotFound(f"model {name!r} has no alias {selector!r}")
        return self.get(name, target)

    def champion(self, name: str) -> ModelVersion | None:
        try:
            return self.resolve(f"{name}@champion")
        except NotFound:
            return None

    def read_file(self, version: ModelVersion, filename: str) -> bytes:
        data = self.store.read(self._version_prefix(version.name, version.version) + filename)
        expected = version.files.get(filename)
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise StoreError(f"{version.ref}/{filename} does not match its recorded sha256")
        return data


def _entry(current: dict, version: int, reason: str, by: str) -> dict:
    """One line of an alias's history: where it went, from where, when, why and who moved it."""
    return {"version": version, "at": utc_now(), "previous": current.get("version"), "reason": reason, "by": by}


def _moved(current: dict, version: int, entry: dict) -> dict:
    history = [*current.get("history", []), entry]
    return {"version": version, "updated_at": entry["at"], "history": history[-MAX_ALIAS_HISTORY:]}


def rollback_target(history: list[dict]) -> int | None:
    """The version a rollback returns to: the one before the current version arrived, or None.

    The history is replayed as a stack of versions: a move pushes its version,
    a rollback pops back to the version it went to. The target is the one
    under the top, so rolling back twice from v3 (after v1 -> v2 -> v3) goes
    to v2, then v1, and not back to v3.
    """
    stack: list[int] = []
    for move in history:
        version = move["version"]
        if move.get("kind") == "rollback" and version in stack:
            del stack[len(stack) - stack[::-1].index(version) :]
        elif stack and stack[-1] == version:
            continue
        else:
            stack.append(version)
    return stack[-2] if len(stack) >= 2 else None
