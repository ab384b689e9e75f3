"""Inside an Argo Workflows pod: what KFP's driver and launcher do around one task.

The WorkflowTemplate that ``mlops compile`` writes (mlops/cluster/argo.py) runs
every task as ``python -m mlops.runners.argo_task run --plan PLAN --param ... --
<the component's command and args from the compiled KFP spec>``. This module:

1. builds the executor input KFP's driver would build: parameter values typed as
   the spec declares them (Argo hands every value over as text), and each input
   artifact's local path and metadata (Argo's init container downloaded it from
   MinIO, the artifact repository; a ``dsl.Collected`` input is a directory of
   every iteration's artifact);
2. runs the component's command as the spec gives it, with the executor input in
   place of the spec's ``{{$}}``;
3. on success, writes each output parameter to a file for Argo, and each output
   artifact's metadata beside its bytes (Argo's wait container uploads both);
   on failure, writes the stage's one-line reason to the container's termination
   message, which Argo shows as the node's message.

``exit`` is the Workflow's exit handler: it fails when the pipeline failed, with
the first failed task's one-line reason, so that reason becomes the Workflow's
status message (Argo sets it from a failed exit handler). With notify settings
(MLOPS_NOTIFY, from the optional Secret mlops-notify) it first tells their webhooks:
run_failed with that reason, or run_finished (mlops/reporting/notify.py).

Nothing here imports kfp or the stages: it is the same in every image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# The spec's ``{{$}}`` (the executor input), as the WorkflowTemplate carries it: Argo
# would take ``{{...}}`` for one of its own variables.
EXECUTOR_INPUT_TOKEN = "__KFP_EXECUTOR_INPUT__"
INPUTS_DIR = Path("/mlops/in")  # Argo mounts each input artifact here, under its name
WORK_DIR = Path("/tmp/mlops")  # the task's writable emptyDir (/tmp)
OUTPUT_PARAMETERS_DIR = WORK_DIR / "out" / "parameters"
OUTPUT_ARTIFACTS_DIR = WORK_DIR / "out" / "artifacts"
PROGRESS_PARAMETER = "mlops-progress"  # the stage's progress lines, an output of every task
METADATA_FILE = "metadata.json"  # beside an artifact's bytes ("data")
DATA_NAME = "data"
TERMINATION_LOG = Path("/dev/termination-log")
MAX_REASON = 1000


class PlanError(Exception):
    """The task's plan or a value handed to it cannot be used (a bug in the translation)."""


def typed(kind: str, text: str):
    """A parameter's text (as Argo passes it) as the type the spec declares."""
    if kind == "STRING":
        return text
    if kind == "NUMBER_INTEGER":
        number = float(text)  # a spec's default may carry an integer as 42.0 (protobuf numbers are doubles)
        if not number.is_integer():
            raise PlanError(f"expected an integer, got {text!r}")
        return int(number)
    if kind == "NUMBER_DOUBLE":
        return float(text)
    if kind == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            raise PlanError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if kind in ("LIST", "STRUCT"):
        return json.loads(text)
    raise PlanError(f"unknown parameter type {kind}")


def as_text(value) -> str:
    """An output parameter as Argo carries it: text as is, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def read_artifact(directory: Path) -> dict:
    """One stored artifact (its ``data`` and ``metadata.json``) as an executor-input entry."""
    record = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    return {
        "name": record.get("name", directory.name),
        "type": record["type"],
        "uri": str(directory / DATA_NAME),
        "metadata": record.get("metadata", {}),
    }


def collected_artifacts(directory: Path) -> list[dict]:
    """Every complete iteration's artifact under a ``dsl.Collected`` input, in a stable order.

    An iteration's artifact is complete when its metadata was written (only after the
    component succeeded); the order is by metadata, so it does not depend on pod names.
    """
    entries = [read_artifact(path.parent) for path in sorted(directory.rglob(METADATA_FILE))]
    return sorted(entries, key=lambda entry: json.dumps(entry["metadata"], sort_keys=True))


def executor_input(plan: dict, values: dict[str, str]) -> dict:
    """The executor input KFP's driver would build for this task."""
    parameters = {}
    for name, kind in plan["inputs"]["parameters"].items():
        if name in values:
            try:
                parameters[name] = typed(kind, values[name])
            except (ValueError, PlanError) as error:
                raise PlanError(f"input parameter {name}: {error}") from None
    artifacts = {}
    for name, spec in plan["inputs"]["artifacts"].items():
        directory = INPUTS_DIR / name
        found = collected_artifacts(directory) if spec.get("list") else [read_artifact(directory)]
        artifacts[name] = {"artifacts": found}
    outputs = {
        "parameters": {
            name: {"outputFile": str(WORK_DIR / "kfp" / "parameters" / name)} for name in plan["outputs"]["parameters"]
        },
        "artifacts": {},
        "outputFile": str(WORK_DIR / "kfp" / "executor_output.json"),
    }
    for name, spec in plan["outputs"]["artifacts"].items():
        directory = OUTPUT_ARTIFACTS_DIR / name
        directory.mkdir(parents=True, exist_ok=True)
        outputs["artifacts"][name] = {
            "artifacts": [{"name": name, "type": spec["type"], "metadata": {}, "uri": str(directory / DATA_NAME)}]
        }
    return {"inputs": {"parameterValues": parameters, "artifacts": artifacts}, "outputs": outputs}


def write_outputs(plan: dict, executor_output: dict, progress: list[str]) -> None:
    """Output parameters as files and artifact metadata beside the bytes, for Argo to collect."""
    OUTPUT_PARAMETERS_DIR.mkdir(parents=True, exist_ok=True)
    values = executor_output.get("parameterValues", {})
    for name in plan["outputs"]["parameters"]:
        if name not in values:
            raise PlanError(f"the component did not return its output parameter {name!r}")
        (OUTPUT_PARAMETERS_DIR / name).write_text(as_text(values[name]), encoding="utf-8")
    (OUTPUT_PARAMETERS_DIR / PROGRESS_PARAMETER).write_text(json.dumps(progress), encoding="utf-8")
    produced = executor_output.get("artifacts", {})
    for name, spec in plan["outputs"]["artifacts"].items():
        runtime = (produced.get(name) or {}).get("artifacts") or [{}]
        record = {"name": name, "type": spec["type"], "metadata": runtime[0].get("metadata", {})}
        (OUTPUT_ARTIFACTS_DIR / name / METADATA_FILE).write_text(json.dumps(record, sort_keys=True), encoding="utf-8")


def one_line(text: str) -> str:
    """Printable, single-line and bounded: a reason fit for a status message."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def report_failure(reason: str) -> None:
    """The reason as the container's termination message (Argo's node message), and on stderr."""
    reason = one_line(reason)
    print(reason, file=sys.stderr, flush=True)
    try:
        TERMINATION_LOG.write_text(reason, encoding="utf-8")
    except OSError:
        pass  # not in a pod (a test): stderr has it


def read_progress(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            lines.append(f"[{record['stage']}] {record['message']}")
        except (ValueError, KeyError, TypeError):
            continue
    return lines


def run_task(plan: dict, values: dict[str, str], command: list[str]) -> int:
    """Build the executor input, run the component, hand its outputs to Argo; the exit status."""
    for directory in (WORK_DIR / "kfp", OUTPUT_PARAMETERS_DIR, OUTPUT_ARTIFACTS_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    try:
        payload = json.dumps(executor_input(plan, values))
    except (OSError, ValueError, KeyError, PlanError) as error:
        report_failure(f"{plan['task']}: the task's inputs could not be read: {error}")
        return 1
    error_file, progress_file = WORK_DIR / "error.json", WORK_DIR / "progress.jsonl"
    env = {**os.environ, "MLOPS_ERROR_FILE": str(error_file), "MLOPS_PROGRESS_FILE": str(progress_file)}
    argv = [payload if arg == EXECUTOR_INPUT_TOKEN else arg for arg in command]
    status = subprocess.run(argv, env=env, check=False).returncode
    if status != 0:
        reason = None
        if error_file.exists():
            try:
                record = json.loads(error_file.read_text(encoding="utf-8"))
                reason = f"{record['stage']}: {record['error']}"
            except (ValueError, KeyError):
                reason = None
        report_failure(reason or f"{plan['task']}: the component exited with status {status}")
        return status
    try:
        output = json.loads((WORK_DIR / "kfp" / "executor_output.json").read_text(encoding="utf-8"))
        write_outputs(plan, output, read_progress(progress_file))
    except (OSError, ValueError, PlanError) as error:
        report_failure(f"{plan['task']}: the task's outputs could not be handed over: {error}")
        return 1
    return 0


_POD_MESSAGE = re.compile(r"^(?:main|init|wait): [A-Za-z]+ \(exit code \d+\)(?:: )?")


def failure_reason(failures_text: str, pipeline_task: str) -> str | None:
    """The run's one-line reason from Argo's ``{{workflow.failures}}``, or None when it succeeded.

    The pipeline failed when its own DAG task did (a task that failed and then passed
    on a retry does not fail it). The reason is the earliest failed pod's message,
    without Argo's ``main: Error (exit code 1):`` prefix.
    """
    text = failures_text
    for _ in range(2):  # Argo quotes the JSON once more (strconv.Quote)
        value = json.loads(text) if text.strip() else []
        if isinstance(value, str):
            text = value
            continue
        break
    failures = value if isinstance(value, list) else []
    if not any(f.get("displayName") == pipeline_task for f in failures):
        return None
    pods = [f for f in failures if _POD_MESSAGE.match(f.get("message") or "")]
    pods.sort(key=lambda f: f.get("finishedAt") or "")
    if not pods:
        messages = [f.get("message") for f in failures if f.get("message")]
        return messages[0] if messages else "the pipeline failed"
    first = pods[0]
    reason = _POD_MESSAGE.sub("", first["message"]).strip()
    return reason or f"{first.get('displayName')}: {first['message']}"


def notify_exit(reason: str | None, status: str, workflow: str, model: str) -> None:
    """Tell the webhooks of the notify settings how the Workflow ended; never fails (a warning line at most)."""
    from mlops import config

    if not (config.NOTIFY.get() or config.NOTIFY_FILE.get()):
        return
    from mlops.reporting import notify

    notifier = notify.notifier_from_environment()
    if reason is None and status not in ("", "Succeeded"):
        reason = f"the Workflow ended with status {status}"  # stopped or terminated: no task failed
    if reason is None:
        notifier.send(notify.run_finished(model or None, "Succeeded", run=workflow, source="argo"))
    else:
        notifier.send(notify.run_failed(model or None, one_line(reason), run=workflow, source="argo"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.runners.argo_task")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one component as KFP's launcher would")
    run.add_argument("--plan", required=True, help="the task's inputs and outputs (JSON, from the translation)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("component", nargs=argparse.REMAINDER, help="-- then the component's command and args")
    exit_handler = commands.add_parser("exit", help="the Workflow's exit handler")
    exit_handler.add_argument("--failures", required=True, help="{{workflow.failures}}")
    exit_handler.add_argument("--pipeline-task", required=True)
    exit_handler.add_argument("--status", default="", help="{{workflow.status}}")
    exit_handler.add_argument("--workflow", default="", help="{{workflow.name}}")
    exit_handler.add_argument("--model", default="", help="the run's model_name parameter, if it has one")
    args = parser.parse_args(argv)
    if args.command == "exit":
        reason = failure_reason(args.failures, args.pipeline_task)
        try:
            notify_exit(reason, args.status, args.workflow, args.model)
        except Exception as error:  # noqa: BLE001 - a notification never changes how the run ended
            print(f"warning: notify: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        if reason is None:
            print("run succeeded")
            return 0
        report_failure(reason)
        return 1
    command = args.component[1:] if args.component[:1] == ["--"] else args.component
    values = {}
    for item in args.param:
        name, _, value = item.partition("=")
        values[name] = value
    return run_task(json.loads(args.plan), values, command)


if __name__ == "__main__":
    sys.exit(main())
