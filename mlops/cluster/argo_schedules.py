"""Cron schedules declared in git (schedules/*.yaml), reconciled into Argo CronWorkflows.

The same rules as for KFP's recurring runs (mlops/cluster/schedules.py): create
what is missing, replace what changed (an update in place: Argo can), suspend a
schedule whose file says ``enabled: false``, delete one whose file is gone, and
leave CronWorkflows that are not ours alone. Ours carry the label
``mlops.io/schedule``; a fingerprint annotation says whether one changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping

from mlops.cluster import argo
from mlops.cluster.argo_client import GROUP, VERSION, Clients, ensure_template
from mlops.cluster.kfp_client import canonical_json
from mlops.cluster.schedules import Schedule, ScheduleError

LABEL_SCHEDULE = "mlops.io/schedule"
ANNOTATION_FINGERPRINT = "mlops.io/schedule-fingerprint"
HISTORY_LIMIT = 3  # finished runs a CronWorkflow keeps, succeeded and failed each


def argo_cron(schedule: Schedule) -> str:
    """robfig/cron with seconds (the schedule files, as KFP takes them) as Argo's five fields.

    Argo schedules by the minute: a schedule that names a second other than 0 cannot be kept.
    """
    fields = schedule.cron.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        return fields[0]
    if fields[0] != "0":
        raise ScheduleError(
            f"schedule {schedule.name!r}: Argo CronWorkflows run on whole minutes; "
            f"the seconds field must be 0, got {fields[0]!r} in {schedule.cron!r}"
        )
    return " ".join(fields[1:])


def cron_workflow(schedule: Schedule, template_name: str) -> dict:
    """The CronWorkflow of one schedule, running the pipeline's WorkflowTemplate."""
    spec: dict[str, Any] = {
        "schedules": [argo_cron(schedule)],
        "timezone": schedule.timezone,
        "concurrencyPolicy": schedule.concurrency_policy,
        "suspend": not schedule.enabled,
        "successfulJobsHistoryLimit": HISTORY_LIMIT,
        "failedJobsHistoryLimit": HISTORY_LIMIT,
        "workflowMetadata": {"labels": {argo.LABEL_PIPELINE: template_name, LABEL_SCHEDULE: schedule.name}},
        "workflowSpec": {
            "workflowTemplateRef": {"name": template_name},
            "arguments": {
                "parameters": [{"name": k, "value": argo.text_value(v)} for k, v in sorted(schedule.params.items())]
            },
        },
    }
    if schedule.no_catchup:
        spec["startingDeadlineSeconds"] = 60  # a run missed by more than a minute is skipped, not caught up
    fingerprint = hashlib.sha256(canonical_json(spec)).hexdigest()[:12]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronWorkflow",
        "metadata": {
            "name": schedule.name,
            "labels": {LABEL_SCHEDULE: schedule.name},
            "annotations": {ANNOTATION_FINGERPRINT: fingerprint},
        },
        "spec": spec,
    }


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)
    suspended: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.suspended or self.deleted)


def sync(
    clients: Clients, schedules: list[Schedule], templates: Mapping[str, dict], *, dry_run: bool = False
) -> SyncReport:
    """Reconcile our CronWorkflows with the schedules; ``templates``: pipeline kind -> WorkflowTemplate."""
    report = SyncReport()
    api, namespace = clients.custom, clients.namespace
    existing = {
        item["metadata"]["name"]: item
        for item in api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "cronworkflows", label_selector=LABEL_SCHEDULE
        )["items"]
    }
    applied: set[str] = set()
    for schedule in schedules:
        template = templates[schedule.pipeline]
        if schedule.pipeline not in applied and not dry_run:
            ensure_template(clients, template)
            applied.add(schedule.pipeline)
        wanted = cron_workflow(schedule, template["metadata"]["name"])
        current = existing.pop(schedule.name, None)
        if current is None:
            if not dry_run:
                api.create_namespaced_custom_object(GROUP, VERSION, namespace, "cronworkflows", wanted)
            report.created.append(schedule.name)
        elif (
            current["metadata"].get("annotations", {}).get(ANNOTATION_FINGERPRINT)
            != wanted["metadata"]["annotations"][ANNOTATION_FINGERPRINT]
        ):
            if not dry_run:
                wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                api.replace_namespaced_custom_object(GROUP, VERSION, namespace, "cronworkflows", schedule.name, wanted)
            (
                report.suspended if not schedule.enabled and not current["spec"].get("suspend") else report.replaced
            ).append(schedule.name)
        else:
            report.unchanged.append(schedule.name)
    for name in sorted(existing):  # ours, but no longer declared
        if not dry_run:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "cronworkflows", name)
        report.deleted.append(name)
    return report
