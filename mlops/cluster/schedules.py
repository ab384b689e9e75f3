"""Cron schedules declared in git (schedules/*.yaml), reconciled into KFP recurring runs.

KFP cannot edit a recurring run in place, so `mlops schedules sync` replaces a
changed one; see :func:`sync_schedules`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from mlops import config
from mlops.cluster.kfp_client import canonical_json, ensure_experiment, ensure_pipeline_version, eq_filter, paged
from mlops.errors import MlopsError

# Recurring runs we manage carry this marker in their description.
SCHEDULE_MARKER = "mlops-schedule"


class ScheduleError(MlopsError):
    """A schedule file that cannot be used; the message names the file, the field and the rule."""


# robfig/cron (what KFP's ScheduledWorkflow uses) with seconds: field -> (low, high, names)
_CRON_FIELDS = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron_value(text: str, low: int, high: int, names) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + (low if low else 0)
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{text!r} is not in {low}-{high}")
    return int(text)


def check_cron(cron: str) -> None:
    """Raise ValueError naming the field when ``cron`` is not a 6-field robfig expression."""
    if cron in _CRON_DESCRIPTORS or re.fullmatch(r"@every \d+(ns|us|ms|s|m|h)(\d+(ns|us|ms|s|m|h))*", cron):
        return
    fields = cron.split()
    if len(fields) != 6:
        raise ValueError(f"has {len(fields)} fields, not 6 (seconds first)")
    for text, (field, low, high, names) in zip(fields, _CRON_FIELDS):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"{field}: step {step!r} must be a positive number")
            if base in ("*", "?"):
                continue
            start, _, end = base.partition("-")
            try:
                first = _cron_value(start, low, high, names)
                if end and _cron_value(end, low, high, names) < first:
                    raise ValueError(f"range {base!r} runs backwards")
            except ValueError as error:
                raise ValueError(f"{field}: {error}") from None


_SCHEDULE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SCHEDULE_FIELDS = {
    "name",
    "cron",
    "pipeline",
    "params",
    "pipeline_version",
    "max_concurrency",
    "enabled",
    "experiment",
    "no_catchup",
    "timezone",
    "concurrency_policy",
}
# Argo CronWorkflows: what a run that is due does while the last one still runs.
CONCURRENCY_POLICIES = ("Forbid", "Allow", "Replace")
# What a schedule may run: the compiled spec of each (pipelines/compiled/) and its name in KFP.
PIPELINES = {
    "training": ("training_pipeline.yaml", config.PIPELINE_NAME),
    "monitor": ("monitor_pipeline.yaml", config.MONITOR_PIPELINE_NAME),
}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One cron schedule as declared in schedules/*.yaml."""

    name: str
    cron: str
    params: Mapping[str, Any]
    pipeline: str = "training"  # training | monitor
    pipeline_version: str | None = None  # a version name; None = the packaged spec
    max_concurrency: int = 1
    enabled: bool = True
    no_catchup: bool = True
    timezone: str = "UTC"  # Argo CronWorkflows (KFP's recurring runs are in UTC)
    concurrency_policy: str = "Forbid"  # Argo CronWorkflows

    def fingerprint(self, version_id: str) -> str:
        """Everything a recurring run cannot change in place, hashed."""
        return hashlib.sha256(
            canonical_json(
                {
                    "cron": self.cron,
                    "params": dict(self.params),
                    "version_id": version_id,
                    "max_concurrency": self.max_concurrency,
                    "no_catchup": self.no_catchup,
                }
            )
        ).hexdigest()[:12]


def parse_schedule(doc: Mapping[str, Any], source: str = "<schedule>") -> Schedule:
    """Validate one schedule document; errors name the file, the field and the rule."""
    if not isinstance(doc, Mapping):
        raise ScheduleError(f"{source}: a schedule must be a mapping. Got {type(doc).__name__}.")
    unknown = set(doc) - _SCHEDULE_FIELDS
    if unknown:
        raise ScheduleError(f"{source}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_SCHEDULE_FIELDS)}.")
    name = doc.get("name")
    if not isinstance(name, str) or not _SCHEDULE_NAME.match(name):
        raise ScheduleError(
            f"{source}: 'name' must be a DNS label (lowercase letters, digits, '-'). Got {name!r} instead."
        )
    cron = doc.get("cron")
    try:
        if not isinstance(cron, str):
            raise ValueError("is not a string")
        check_cron(cron)
    except ValueError as error:
        raise ScheduleError(
            f"{source}: 'cron' {error}: it must have 6 fields, seconds first (KFP uses robfig/cron), "
            f"e.g. '0 0 3 * * *'. Got {cron!r} instead."
        ) from None
    params = doc.get("params") or {}
    if not isinstance(params, Mapping):
        raise ScheduleError(f"{source}: 'params' must be a mapping. Got {params!r} instead.")
    max_c = doc.get("max_concurrency", 1)
    if not isinstance(max_c, int) or isinstance(max_c, bool) or not 1 <= max_c <= 10:
        raise ScheduleError(f"{source}: 'max_concurrency' must be an integer in [1, 10]. Got {max_c!r} instead.")
    for flag in ("enabled", "no_catchup"):
        if not isinstance(doc.get(flag, True), bool):
            raise ScheduleError(f"{source}: '{flag}' must be true or false. Got {doc[flag]!r}.")
    version = doc.get("pipeline_version")
    if version is not None and not isinstance(version, str):
        raise ScheduleError(f"{source}: 'pipeline_version' must be a version name. Got {version!r}.")
    pipeline = doc.get("pipeline", "training")
    if pipeline not in PIPELINES:
        raise ScheduleError(f"{source}: 'pipeline' must be one of {sorted(PIPELINES)}. Got {pipeline!r} instead.")
    timezone = doc.get("timezone", "UTC")
    if not isinstance(timezone, str) or not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", timezone):
        raise ScheduleError(
            f"{source}: 'timezone' must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Berlin'. Got {timezone!r} instead."
        )
    policy = doc.get("concurrency_policy", "Forbid")
    if policy not in CONCURRENCY_POLICIES:
        raise ScheduleError(
            f"{source}: 'concurrency_policy' must be one of {list(CONCURRENCY_POLICIES)}. Got {policy!r} instead."
        )
    return Schedule(
        name=name,
        cron=cron,
        params=dict(params),
        pipeline=pipeline,
        pipeline_version=version,
        max_concurrency=max_c,
        enabled=doc.get("enabled", True),
        no_catchup=doc.get("no_catchup", True),
        timezone=timezone,
        concurrency_policy=policy,
    )


def load_schedules(directory) -> list[Schedule]:
    """All schedules in `directory`/*.yaml (one document per file); names must be unique.

    kustomization.yaml (which packs the files into a ConfigMap) is not a schedule.
    """
    schedules: list[Schedule] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ScheduleError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
        schedules.append(parse_schedule(document, str(path)))
    names = [s.name for s in schedules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScheduleError(f"{directory}: schedule names must be unique; repeated: {dupes}.")
    return schedules


def _description(name: str, fp: str) -> str:
    return f"{SCHEDULE_MARKER}={name};fingerprint={fp}"


def _parse_description(text: str | None) -> tuple[str, str] | None:
    m = re.fullmatch(rf"{SCHEDULE_MARKER}=([-a-z0-9]+);fingerprint=([0-9a-f]+)", text or "")
    return (m.group(1), m.group(2)) if m else None


def _is_enabled(rr) -> bool:
    return str(getattr(rr, "mode", "") or "").upper() == "ENABLE"


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)
    enabled: list[str] = dataclasses.field(default_factory=list)
    disabled: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.enabled or self.disabled)


def _resolve_version(client, schedule: Schedule, pipeline_id: str, default_version: str) -> str:
    if schedule.pipeline_version is None:
        return default_version
    for version in paged(
        client.list_pipeline_versions,
        "pipeline_versions",
        pipeline_id=pipeline_id,
        filter=eq_filter("display_name", schedule.pipeline_version),
    ):
        if version.display_name == schedule.pipeline_version:
            return version.pipeline_version_id
    raise ScheduleError(
        f"schedule {schedule.name!r}: pipeline version {schedule.pipeline_version!r} does not exist in KFP."
    )


def sync_schedules(
    client,
    schedules: list[Schedule],
    packages: Mapping[str, Any],
    *,
    pipeline_names: Mapping[str, str] | None = None,
    experiment: str = config.KFP_EXPERIMENT,
    dry_run: bool = False,
) -> SyncReport:
    """Reconcile KFP recurring runs with the schedules declared in git.

    Recurring runs we manage carry `mlops-schedule=<name>;fingerprint=<hash>` in
    their description. KFP cannot edit a recurring run in place, so a changed
    schedule (cron, params, pipeline version, concurrency) is replaced: the new
    one is created first, then the old one is disabled and deleted. A schedule
    removed from git is disabled (kept for its history), never deleted.
    Unmanaged recurring runs are left alone. Running it twice changes nothing.
    """
    report = SyncReport()
    experiment_id = ensure_experiment(client, experiment)
    names = {kind: name for kind, (_, name) in PIPELINES.items()} | dict(pipeline_names or {})
    published: dict[str, tuple[str, str]] = {}  # pipeline kind -> (pipeline id, default version id)

    existing: dict[str, list[tuple[str, Any]]] = {}
    for rr in paged(client.list_recurring_runs, "recurring_runs", experiment_id=experiment_id):
        parsed = _parse_description(rr.description)
        if parsed:
            existing.setdefault(parsed[0], []).append((parsed[1], rr))

    def act(action: Callable[[], Any]) -> None:
        if not dry_run:
            action()

    for sched in schedules:
        if sched.pipeline not in published:
            published[sched.pipeline] = ensure_pipeline_version(client, packages[sched.pipeline], names[sched.pipeline])
        pipeline_id, default_version = published[sched.pipeline]
        version_id = _resolve_version(client, sched, pipeline_id, default_version)
        fp = sched.fingerprint(version_id)
        current = existing.pop(sched.name, [])
        same = [rr for f, rr in current if f == fp]
        stale = [rr for f, rr in current if f != fp]
        keep = same[0] if same else None
        # duplicates of the same fingerprint (e.g. two concurrent syncs): keep one
        stale += same[1:]
        if keep is None:
            act(
                lambda s=sched, v=version_id, f=fp, p=pipeline_id: client.create_recurring_run(
                    experiment_id=experiment_id,
                    job_name=s.name,
                    description=_description(s.name, f),
                    cron_expression=s.cron,
                    max_concurrency=s.max_concurrency,
                    no_catchup=s.no_catchup,
                    params=dict(s.params),
                    pipeline_id=p,
                    version_id=v,
                    enabled=s.enabled,
                )
            )
            (report.replaced if current else report.created).append(sched.name)
        elif _is_enabled(keep) != sched.enabled:
            if sched.enabled:
                act(lambda r=keep: client.enable_recurring_run(r.recurring_run_id))
                report.enabled.append(sched.name)
            else:
                act(lambda r=keep: client.disable_recurring_run(r.recurring_run_id))
                report.disabled.append(sched.name)
        else:
            report.unchanged.append(sched.name)
        for rr in stale:
            act(lambda r=rr: client.disable_recurring_run(r.recurring_run_id))
            act(lambda r=rr: client.delete_recurring_run(r.recurring_run_id))

    # declared nowhere any more: disable, keep for history
    for name, items in sorted(existing.items()):
        live = [rr for _, rr in items if _is_enabled(rr)]
        for rr in live:
            act(lambda r=rr: client.disable_recurring_run(r.recurring_run_id))
        if live:
            report.disabled.append(name)
    return report
