"""`mlops submit --engine argo` and `mlops schedules sync --engine argo` against an in-memory
stand-in for the Kubernetes custom-objects API (the live cluster tests run the real one)."""

from __future__ import annotations

import copy

import pytest
from kubernetes.client.exceptions import ApiException

from mlops import config
from mlops.cluster import argo, argo_client, argo_schedules
from mlops.cluster.schedules import ScheduleError, parse_schedule

TRAINING = config.COMPILED_DIR / "training_pipeline.yaml"


class FakeCustomObjects:
    """Namespaced custom objects in a dict, with the API server's 404/409 and resourceVersion checks."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.version = 0

    def _key(self, plural, name):
        return plural, name

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        try:
            return copy.deepcopy(self.objects[self._key(plural, name)])
        except KeyError:
            raise ApiException(status=404) from None

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        key = self._key(plural, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409)
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = body
        self.calls.append(("create", plural, key[1]))
        return body

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        current = self.objects[self._key(plural, name)]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[self._key(plural, name)] = body
        self.calls.append(("replace", plural, name))

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        del self.objects[self._key(plural, name)]
        self.calls.append(("delete", plural, name))

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector=""):
        wanted = [s for s in label_selector.split(",") if s]
        items = []
        for (kind, _), obj in self.objects.items():
            labels = obj["metadata"].get("labels", {})
            if kind == plural and all(
                (s.split("=")[0] in labels) if "=" not in s else labels.get(s.split("=")[0]) == s.split("=")[1]
                for s in wanted
            ):
                items.append(copy.deepcopy(obj))
        return {"items": items}


@pytest.fixture
def clients():
    return argo_client.Clients(FakeCustomObjects(), None, "mlops-runs")


PARAMS = {"data_uri": "demo-wine@latest", "target": "target", "model_name": "demo-wine"}


def test_submit_applies_the_template_once_and_is_idempotent_by_key(clients):
    first = argo_client.submit(clients, TRAINING, PARAMS, commit="abc123")
    again = argo_client.submit(clients, TRAINING, PARAMS, commit="abc123")
    other = argo_client.submit(clients, TRAINING, {**PARAMS, "target": "quality"}, commit="abc123")
    assert first.created and first.template == "created"
    assert not again.created and again.name == first.name and again.template == "current"
    assert other.created and other.name != first.name
    workflows = [c for c in clients.custom.calls if c[1] == "workflows" and c[0] == "create"]
    assert len(workflows) == 2
    run = clients.custom.objects[("workflows", first.name)]
    assert run["spec"]["workflowTemplateRef"] == {"name": "training-pipeline"}
    assert run["metadata"]["labels"][argo_client.LABEL_COMMIT] == "abc123"
    assert {p["name"]: p["value"] for p in run["spec"]["arguments"]["parameters"]} == PARAMS


def test_a_changed_spec_replaces_the_template(clients, tmp_path):
    argo_client.submit(clients, TRAINING, PARAMS)
    changed = tmp_path / "training_pipeline.yaml"
    changed.write_text(TRAINING.read_text() + "\n# a change\n")
    assert argo_client.submit(clients, changed, PARAMS).template == "updated"


def test_message_strips_argos_container_prefix():
    workflow = {"status": {"message": "main: Error (exit code 1): split: target 'nope' is not a column"}}
    assert argo_client.message(workflow) == "split: target 'nope' is not a column"


def _schedule(**fields):
    doc = {
        "name": "every-minute",
        "cron": "0 * * * * *",
        "pipeline": "monitor",
        "params": {"data_uri": "x@latest", "model_name": "m"},
        **fields,
    }
    return parse_schedule(doc, "test.yaml")


def test_cron_workflow_fields():
    cron = argo_schedules.cron_workflow(_schedule(timezone="Europe/Berlin"), "monitor-pipeline")
    spec = cron["spec"]
    assert spec["schedules"] == ["* * * * *"] and spec["timezone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid" and spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 3
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": "monitor-pipeline"}
    assert (
        argo_schedules.cron_workflow(_schedule(concurrency_policy="Replace"), "x")["spec"]["concurrencyPolicy"]
        == "Replace"
    )


def test_a_cron_with_seconds_is_refused_in_one_line():
    with pytest.raises(ScheduleError, match="seconds field must be 0"):
        argo_schedules.argo_cron(_schedule(cron="30 * * * * *"))
    with pytest.raises(ScheduleError, match="concurrency_policy"):
        _schedule(concurrency_policy="Sometimes")


def test_sync_creates_replaces_suspends_deletes_and_leaves_unmanaged_alone(clients):
    templates = {kind: argo_client.template_for(argo_client.packaged(kind)) for kind in ("training", "monitor")}
    clients.custom.objects[("cronworkflows", "someone-elses")] = {
        "metadata": {"name": "someone-elses", "labels": {}},
        "spec": {},
    }
    a, b = _schedule(name="a"), _schedule(name="b")
    report = argo_schedules.sync(clients, [a, b], templates)
    assert report.created == ["a", "b"]
    assert argo_schedules.sync(clients, [a, b], templates).changed is False
    report = argo_schedules.sync(
        clients, [_schedule(name="a", cron="0 */5 * * * *"), _schedule(name="b", enabled=False)], templates
    )
    assert report.replaced == ["a"] and report.suspended == ["b"]
    assert clients.custom.objects[("cronworkflows", "b")]["spec"]["suspend"] is True
    report = argo_schedules.sync(clients, [], templates)
    assert report.deleted == ["a", "b"]
    assert ("cronworkflows", "someone-elses") in clients.custom.objects
    assert ("workflowtemplates", "monitor-pipeline") in clients.custom.objects
    assert (
        argo.ANNOTATION_SPEC
        in clients.custom.objects[("workflowtemplates", "monitor-pipeline")]["metadata"]["annotations"]
    )


def test_a_changed_translation_of_the_same_spec_is_a_new_template_and_a_new_run(clients, monkeypatch):
    first = argo_client.submit(clients, TRAINING, PARAMS)
    translate = argo.translate_file

    def changed(path, name=None):
        template = translate(path, name)
        template["spec"]["templates"][0]["metadata"] = {"labels": {"changed": "yes"}}
        return template

    monkeypatch.setattr(argo, "translate_file", changed)
    second = argo_client.submit(clients, TRAINING, PARAMS)
    assert second.template == "updated" and second.created and second.name != first.name
