"""The compiled KFP pipeline spec as an Argo Workflows WorkflowTemplate.

KFP's backend turns every run into an Argo Workflow; where KFP's backend cannot
run, this translation does the same from the compiled pipeline spec alone (the
IR YAML in pipelines/compiled/, never the Python DSL), so that spec stays the
single source of truth. What maps to what:

- every IR DAG (the root, a ``dsl.ParallelFor`` body, a ``dsl.If`` branch, a
  pipeline used as a component) -> an Argo DAG template; every task -> a DAG task
  with the same name and ``dependentTasks`` as ``dependencies``;
- a container task -> a container template running the component's image and
  command as the spec gives them, wrapped by :mod:`mlops.runners.argo_task` (the
  part of KFP's driver and launcher that builds the executor input); resources,
  ``retryPolicy``, and the Kubernetes platform spec (Secrets and ConfigMaps as
  env, emptyDir mounts, security context) carried over;
- parameters -> Argo parameters (text; the launcher types them as the spec does);
  artifacts -> Argo artifacts in the artifact repository (our MinIO), uploaded
  as a directory (``data`` + ``metadata.json``) under a key that names the run,
  the task's path and the pod;
- ``ParallelFor`` -> ``withParam`` over the items, inside a wrapper DAG whose
  ``parallelism`` is the spec's limit; ``dsl.Collected`` -> the key prefix under
  which every iteration stored that artifact;
- ``dsl.If`` -> ``when``; ``{{$.pipeline_job_name}}``/``uuid`` -> the Workflow's
  name/uid; a failed run's one-line reason -> the Workflow's status message,
  through an exit handler, which also tells the webhooks of the optional Secret
  ``mlops-notify`` (run_failed with that reason, or run_finished).

KFP's cache (``cachingOptions``) has no counterpart here: every run recomputes
(the stages' content addressing makes a repeat cheap); the template says so in
an annotation. Anything else the translation does not know fails with one line
naming it (:class:`TranslationError`), never a silent drop.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mlops import config
from mlops.errors import MlopsError

LAUNCHER = ["python", "-m", "mlops.runners.argo_task"]
EXECUTOR_INPUT_TOKEN = "__KFP_EXECUTOR_INPUT__"  # mlops.runners.argo_task.EXECUTOR_INPUT_TOKEN
INPUTS_DIR = "/mlops/in"
OUTPUT_PARAMETERS_DIR = "/tmp/mlops/out/parameters"
OUTPUT_ARTIFACTS_DIR = "/tmp/mlops/out/artifacts"
PROGRESS_PARAMETER = "mlops-progress"
ENTRYPOINT = "main"
PIPELINE_TASK = "pipeline"
EXIT_HANDLER = "exit-handler"
SEP = "--"
# Where a run's artifacts live in the artifact repository (Argo's bucket, the artifacts role).
ARTIFACT_PREFIX = "argo-runs/{{workflow.name}}-{{workflow.uid}}"
RUNTIME_PLACEHOLDERS = {
    "{{$.pipeline_job_name}}": "{{workflow.name}}",
    "{{$.pipeline_job_uuid}}": "{{workflow.uid}}",
    "{{$.pipeline_job_resource_name}}": "{{workflow.name}}",
}
# Security settings every container gets (Pod Security "restricted"); the spec's own
# securityContext (user, group, non-root) is applied on top.
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": config.RUN_AS_USER,
    "runAsGroup": config.RUN_AS_GROUP,
    "fsGroup": config.RUN_AS_GROUP,
    "seccompProfile": {"type": "RuntimeDefault"},
}
LABEL_PIPELINE = "mlops.io/pipeline"
LABEL_TASK = "mlops.io/task"
ANNOTATION_SPEC = "mlops.io/spec-sha256"
ANNOTATION_NOTES = "mlops.io/translation-notes"
CACHE_NOTE = (
    "cachingOptions: not mapped (Argo memoizes by parameters only; KFP's cache key includes "
    "artifact identity); every run recomputes"
)

_TASK_KEYS = {
    "componentRef",
    "dependentTasks",
    "inputs",
    "taskInfo",
    "cachingOptions",
    "parameterIterator",
    "iteratorPolicy",
    "triggerPolicy",
    "retryPolicy",
}
_PLATFORM_KEYS = {"secretAsEnv", "configMapAsEnv", "emptyDirMounts", "securityContext"}
_CONTAINER_KEYS = {"image", "command", "args", "resources", "env"}
_RESOURCE_KEYS = {
    "resourceCpuLimit": ("limits", "cpu"),
    "resourceCpuRequest": ("requests", "cpu"),
    "resourceMemoryLimit": ("limits", "memory"),
    "resourceMemoryRequest": ("requests", "memory"),
}
_CONDITION = re.compile(r"^inputs\.parameter_values\['([^']+)'\]\s*(==|!=)\s*('([^']*)'|-?\d+(?:\.\d+)?|true|false)$")


class TranslationError(MlopsError):
    """The compiled spec uses something the Argo translation does not carry."""


def _fail(where: str, what: str):
    raise TranslationError(f"Argo translation: {where}: {what} is not supported")


def text_value(value: Any) -> str:
    """A parameter value as Argo text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def parameter_text(value: Any, kind: str) -> str:
    """A spec default as Argo text; an integer stays an integer (the IR stores numbers as doubles)."""
    if kind == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return text_value(value)


def _runtime_constant(value: Any, where: str) -> str:
    text = text_value(value)
    for placeholder, argo in RUNTIME_PLACEHOLDERS.items():
        text = text.replace(placeholder, argo)
    leftover = re.search(r"\{\{\$[^}]*\}\}", text)
    if leftover:
        _fail(where, f"the placeholder {leftover.group(0)}")
    return text


class _Translator:
    def __init__(self, spec: dict, platform: dict, name: str):
        self.spec = spec
        self.executors = spec.get("deploymentSpec", {}).get("executors", {})
        self.platform = platform
        self.name = name
        self.templates: list[dict] = []
        self.notes: set[str] = set()

    # -- helpers ----------------------------------------------------------------

    def component(self, task: dict, where: str) -> dict:
        ref = task.get("componentRef", {}).get("name")
        if ref not in self.spec["components"]:
            _fail(where, f"componentRef {ref!r}")
        return self.spec["components"][ref]

    @staticmethod
    def template_name(path: list[str]) -> str:
        return SEP.join(path)

    def parameter_source(self, source: dict, where: str, dag_inputs: str = "inputs") -> str:
        """An IR parameter source as an Argo expression (in a DAG task's arguments)."""
        if "componentInputParameter" in source:
            return "{{%s.parameters.%s}}" % (dag_inputs, source["componentInputParameter"])
        if "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            return "{{tasks.%s.outputs.parameters.%s}}" % (producer["producerTask"], producer["outputParameterKey"])
        if "runtimeValue" in source:
            return _runtime_constant(source["runtimeValue"].get("constant"), where)
        _fail(where, f"the parameter source {sorted(source)}")

    # -- DAGs -------------------------------------------------------------------

    def dag_template(self, component: dict, path: list[str], extra_inputs: dict | None = None) -> str:
        """An IR DAG component as an Argo DAG template; returns its name."""
        name = self.template_name(path)
        definitions = component.get("inputDefinitions", {})
        parameters = []
        for parameter, definition in sorted(definitions.get("parameters", {}).items()):
            entry = {"name": parameter}
            if "defaultValue" in definition:
                entry["value"] = parameter_text(definition["defaultValue"], definition.get("parameterType", ""))
            parameters.append(entry)
        inputs = {
            "parameters": parameters,
            "artifacts": [{"name": a} for a in sorted(definitions.get("artifacts", {}))],
        }
        tasks = []
        dag = component["dag"]
        for task_name in sorted(dag.get("tasks", {})):
            tasks.append(self.dag_task(task_name, dag["tasks"][task_name], path + [task_name], dag["tasks"]))
        template: dict = {"name": name, "inputs": {k: v for k, v in inputs.items() if v}, "dag": {"tasks": tasks}}
        outputs = self.dag_outputs(component, path)
        if outputs:
            template["outputs"] = outputs
        self.templates.append(template)
        return name

    def dag_outputs(self, component: dict, path: list[str]) -> dict:
        outputs: dict = {}
        spec = component["dag"].get("outputs", {})
        where = self.template_name(path)
        for name in sorted(spec.get("parameters", {})):
            source = spec["parameters"][name]
            if "valueFromParameter" not in source:
                _fail(where, f"the DAG output parameter source {sorted(source)}")
            producer = source["valueFromParameter"]
            outputs.setdefault("parameters", []).append(
                {
                    "name": name,
                    "valueFrom": {
                        "parameter": "{{tasks.%s.outputs.parameters.%s}}"
                        % (producer["producerSubtask"], producer["outputParameterKey"])
                    },
                }
            )
        for name in sorted(spec.get("artifacts", {})):
            selectors = spec["artifacts"][name].get("artifactSelectors", [])
            if len(selectors) != 1:
                _fail(where, f"an output artifact with {len(selectors)} selectors")
            producer = selectors[0]
            outputs.setdefault("artifacts", []).append(
                {
                    "name": name,
                    "from": "{{tasks.%s.outputs.artifacts.%s}}"
                    % (producer["producerSubtask"], producer["outputArtifactKey"]),
                }
            )
        return outputs

    def collected_prefix(self, loop_task: dict, loop_path: list[str], artifact_key: str, where: str) -> str:
        """The key prefix under which every iteration of a ParallelFor stored an artifact."""
        body = self.component(loop_task, where)
        selectors = (
            body["dag"].get("outputs", {}).get("artifacts", {}).get(artifact_key, {}).get("artifactSelectors", [])
        )
        if len(selectors) != 1:
            _fail(where, f"the collected artifact {artifact_key!r}")
        inner = selectors[0]["producerSubtask"]
        inner_task = body["dag"]["tasks"][inner]
        if "dag" in self.component(inner_task, where):
            _fail(where, f"collecting {artifact_key!r} from a nested pipeline inside a ParallelFor")
        return f"{ARTIFACT_PREFIX}/{self.template_name(loop_path + [inner])}/"

    def dag_task(self, task_name: str, task: dict, path: list[str], siblings: dict) -> dict:
        where = self.template_name(path)
        unknown = set(task) - _TASK_KEYS
        if unknown:
            _fail(where, f"the task field {sorted(unknown)[0]}")
        if task.get("cachingOptions", {}).get("enableCache"):
            self.notes.add(CACHE_NOTE)
        component = self.component(task, where)
        argo: dict = {"name": task_name}
        if task.get("dependentTasks"):
            argo["dependencies"] = sorted(task["dependentTasks"])
        parameters, artifacts = [], []
        for name in sorted(task.get("inputs", {}).get("parameters", {})):
            source = task["inputs"]["parameters"][name]
            parameters.append({"name": name, "value": self.parameter_source(source, f"{where} input {name}")})
        for name in sorted(task.get("inputs", {}).get("artifacts", {})):
            source = task["inputs"]["artifacts"][name]
            if "componentInputArtifact" in source:
                artifacts.append({"name": name, "from": "{{inputs.artifacts.%s}}" % source["componentInputArtifact"]})
            elif "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                producer_task = siblings.get(producer["producerTask"])
                if producer_task is None:
                    _fail(where, f"input {name} from the unknown task {producer['producerTask']!r}")
                if "parameterIterator" in producer_task:  # dsl.Collected
                    key = self.collected_prefix(
                        producer_task, path[:-1] + [producer["producerTask"]], producer["outputArtifactKey"], where
                    )
                    artifacts.append({"name": name, "s3": {"key": key}})
                else:
                    artifacts.append(
                        {
                            "name": name,
                            "from": "{{tasks.%s.outputs.artifacts.%s}}"
                            % (producer["producerTask"], producer["outputArtifactKey"]),
                        }
                    )
            else:
                _fail(where, f"the artifact source {sorted(source)}")
        if "triggerPolicy" in task:
            argo["when"] = self.condition(task, where)
        if "parameterIterator" in task or "artifactIterator" in task:
            argo["template"] = self.loop(task, path, where)
        elif "dag" in component:
            argo["template"] = self.dag_template(component, path)
        else:
            argo["template"] = self.container_template(task, component, path)
        arguments = {}
        if parameters:
            arguments["parameters"] = parameters
        if artifacts:
            arguments["artifacts"] = artifacts
        if arguments:
            argo["arguments"] = arguments
        return argo

    def condition(self, task: dict, where: str) -> str:
        """A dsl.If trigger condition as an Argo ``when`` expression."""
        text = task["triggerPolicy"].get("condition", "")
        parts = [part.strip() for part in re.split(r"\s+&&\s+", text)]
        expressions = []
        for part in parts:
            match = _CONDITION.match(part)
            if not match:
                _fail(where, f"the condition {text!r}")
            name, operator, literal, quoted = match.groups()
            source = task.get("inputs", {}).get("parameters", {}).get(name)
            if source is None:
                _fail(where, f"the condition on the unknown input {name!r}")
            value = self.parameter_source(source, where)
            if quoted is not None or literal.startswith("'"):
                expressions.append(f"'{value}' {operator} '{quoted}'")
            else:
                expressions.append(f"{value} {operator} {literal}")
        return " && ".join(expressions)

    def loop(self, task: dict, path: list[str], where: str) -> str:
        """A ParallelFor: a wrapper DAG (parallelism) with one task over the items."""
        if "artifactIterator" in task:
            _fail(where, "a ParallelFor over artifacts")
        iterator = task["parameterIterator"]
        body = self.component(task, where)
        item_input = iterator["itemInput"]
        items = iterator.get("items", {})
        if "inputParameter" in items:
            with_param = "{{inputs.parameters.%s}}" % items["inputParameter"]
        elif "raw" in items:
            with_param = _runtime_constant(items["raw"], where)
        else:
            _fail(where, f"the loop items {sorted(items)}")
        body_name = self.dag_template(body, path)
        definitions = body.get("inputDefinitions", {})
        passed = sorted(p for p in task.get("inputs", {}).get("parameters", {}))
        wrapper_inputs = {
            "parameters": [{"name": p} for p in passed],
            "artifacts": [{"name": a} for a in sorted(task.get("inputs", {}).get("artifacts", {}))],
        }
        arguments = {
            "parameters": [
                {"name": p, "value": "{{inputs.parameters.%s}}" % p}
                for p in sorted(definitions.get("parameters", {}))
                if p != item_input
            ]
            + [{"name": item_input, "value": "{{item}}"}],
            "artifacts": [
                {"name": a, "from": "{{inputs.artifacts.%s}}" % a} for a in sorted(definitions.get("artifacts", {}))
            ],
        }
        wrapper: dict = {
            "name": self.template_name(path) + SEP + "fan-out",
            "inputs": {k: v for k, v in wrapper_inputs.items() if v},
            "dag": {
                "tasks": [
                    {
                        "name": "iteration",
                        "template": body_name,
                        "withParam": with_param,
                        "arguments": {k: v for k, v in arguments.items() if v},
                    }
                ]
            },
        }
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
        if limit:
            wrapper["parallelism"] = int(limit)
        body_outputs = body["dag"].get("outputs", {})
        parameters = [
            {"name": n, "valueFrom": {"parameter": "{{tasks.iteration.outputs.parameters.%s}}" % n}}
            for n in sorted(body_outputs.get("parameters", {}))
        ]
        if parameters:
            wrapper["outputs"] = {"parameters": parameters}
        self.templates.append(wrapper)
        return wrapper["name"]

    # -- containers -------------------------------------------------------------

    def container_template(self, task: dict, component: dict, path: list[str]) -> str:
        where = self.template_name(path)
        executor_label = component.get("executorLabel")
        executor = self.executors.get(executor_label, {})
        container = executor.get("container")
        if container is None:
            _fail(where, f"the executor {executor_label!r} (only containers are)")
        unknown = set(container) - _CONTAINER_KEYS
        if unknown:
            _fail(where, f"the container field {sorted(unknown)[0]}")
        definitions = component.get("inputDefinitions", {})
        outputs = component.get("outputDefinitions", {})
        plan = {
            "task": path[-1],
            "inputs": {
                "parameters": {n: d["parameterType"] for n, d in sorted(definitions.get("parameters", {}).items())},
                "artifacts": {
                    n: {"type": d["artifactType"], **({"list": True} if d.get("isArtifactList") else {})}
                    for n, d in sorted(definitions.get("artifacts", {}).items())
                },
            },
            "outputs": {
                "parameters": {n: d["parameterType"] for n, d in sorted(outputs.get("parameters", {}).items())},
                "artifacts": {n: {"type": d["artifactType"]} for n, d in sorted(outputs.get("artifacts", {}).items())},
            },
        }
        plan_text = json.dumps(plan, sort_keys=True, separators=(",", ":"))
        if "{{" in plan_text:
            _fail(where, "a name with '{{'")
        passed = task.get("inputs", {}).get("parameters", {})
        command = list(LAUNCHER) + ["run", "--plan", plan_text]
        for name in sorted(passed):
            command += ["--param", "%s={{inputs.parameters.%s}}" % (name, name)]
        spec_command = list(container.get("command", [])) + list(container.get("args", []))
        for arg in spec_command:
            if arg != "{{$}}" and re.search(r"\{\{\$[^}]*\}\}", arg):
                _fail(where, f"the placeholder {re.search(r'{{[$][^}]*}}', arg).group(0)} in the command")
        command += ["--"] + [EXECUTOR_INPUT_TOKEN if arg == "{{$}}" else arg for arg in spec_command]
        argo_container: dict = {
            "image": container["image"],
            "command": command,
            "securityContext": dict(RESTRICTED),
            "env": [],
            "volumeMounts": [],
        }
        for item in container.get("env", []):
            argo_container["env"].append({"name": item["name"], "value": item.get("value", "")})
        resources: dict = {}
        for key, (kind, resource) in _RESOURCE_KEYS.items():
            if key in container.get("resources", {}):
                resources.setdefault(kind, {})[resource] = container["resources"][key]
        if resources:
            argo_container["resources"] = resources
        volumes = self.apply_platform(executor_label, argo_container, where)
        if not argo_container["env"]:
            del argo_container["env"]
        template: dict = {
            "name": where,
            "metadata": {"labels": {LABEL_TASK: path[-1]}},
            "inputs": {},
            # Defaults and optional artifacts: a failed component writes no outputs, and its node
            # must fail with the component's reason, not with a missing file (on success the
            # launcher writes every declared output, or fails).
            "outputs": {
                "parameters": [
                    {"name": n, "valueFrom": {"path": f"{OUTPUT_PARAMETERS_DIR}/{n}", "default": ""}}
                    for n in sorted(outputs.get("parameters", {}))
                ]
                + [
                    {
                        "name": PROGRESS_PARAMETER,
                        "valueFrom": {"path": f"{OUTPUT_PARAMETERS_DIR}/{PROGRESS_PARAMETER}", "default": "[]"},
                    }
                ]
            },
            "container": argo_container,
        }
        if passed:
            template["inputs"]["parameters"] = [{"name": n} for n in sorted(passed)]
        input_artifacts = sorted(task.get("inputs", {}).get("artifacts", {}))
        if input_artifacts:
            template["inputs"]["artifacts"] = [{"name": n, "path": f"{INPUTS_DIR}/{n}"} for n in input_artifacts]
        if not template["inputs"]:
            del template["inputs"]
        artifacts = [
            {
                "name": n,
                "path": f"{OUTPUT_ARTIFACTS_DIR}/{n}",
                "archive": {"none": {}},
                "optional": True,
                "s3": {"key": f"{ARTIFACT_PREFIX}/{where}/{{{{pod.name}}}}/{n}"},
            }
            for n in sorted(outputs.get("artifacts", {}))
        ]
        if artifacts:
            template["outputs"]["artifacts"] = artifacts
        if volumes:
            template["volumes"] = volumes
        retry = task.get("retryPolicy")
        if retry:
            template["retryStrategy"] = self.retry(retry, where)
        self.templates.append(template)
        return where

    def apply_platform(self, executor_label: str, container: dict, where: str) -> list[dict]:
        """The Kubernetes platform spec of one executor: env from Secrets/ConfigMaps, mounts, security."""
        settings = self.platform.get(executor_label, {})
        unknown = set(settings) - _PLATFORM_KEYS
        if unknown:
            _fail(where, f"the Kubernetes platform setting {sorted(unknown)[0]}")
        for secret in settings.get("secretAsEnv", []):
            for pair in secret.get("keyToEnv", []):
                container["env"].append(
                    {
                        "name": pair["envVar"],
                        "valueFrom": {
                            "secretKeyRef": {
                                "name": secret["secretName"],
                                "key": pair["secretKey"],
                                **({"optional": True} if secret.get("optional") else {}),
                            }
                        },
                    }
                )
        for config_map in settings.get("configMapAsEnv", []):
            for pair in config_map.get("keyToEnv", []):
                container["env"].append(
                    {
                        "name": pair["envVar"],
                        "valueFrom": {
                            "configMapKeyRef": {
                                "name": config_map["configMapName"],
                                "key": pair["configMapKey"],
                                **({"optional": True} if config_map.get("optional") else {}),
                            }
                        },
                    }
                )
        volumes = []
        for mount in settings.get("emptyDirMounts", []):
            empty_dir = {"sizeLimit": mount["sizeLimit"]} if mount.get("sizeLimit") else {}
            if mount.get("medium"):
                empty_dir["medium"] = mount["medium"]
            volumes.append({"name": mount["volumeName"], "emptyDir": empty_dir})
            container["volumeMounts"].append({"name": mount["volumeName"], "mountPath": mount["mountPath"]})
        if not any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]):
            # The launcher and the stages write under /tmp; the root filesystem is read-only.
            volumes.append({"name": "tmp", "emptyDir": {}})
            container["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})
        for key, value in settings.get("securityContext", {}).items():
            if key in ("runAsUser", "runAsGroup"):
                container["securityContext"][key] = int(value)
            elif key == "runAsNonRoot":
                container["securityContext"][key] = bool(value)
            else:
                _fail(where, f"the securityContext field {key}")
        return volumes

    @staticmethod
    def retry(policy: dict, where: str) -> dict:
        strategy: dict = {"limit": int(policy.get("maxRetryCount", 0)), "retryPolicy": "Always"}
        backoff = {}
        if policy.get("backoffDuration"):
            backoff["duration"] = str(policy["backoffDuration"])
        if policy.get("backoffFactor"):
            backoff["factor"] = policy["backoffFactor"]
        if policy.get("backoffMaxDuration"):
            backoff["maxDuration"] = str(policy["backoffMaxDuration"])
        if backoff:
            strategy["backoff"] = backoff
        return strategy

    # -- the whole ---------------------------------------------------------------

    def translate(self, spec_sha256: str) -> dict:
        root = self.spec["root"]
        parameters = []
        for name, definition in sorted(root.get("inputDefinitions", {}).get("parameters", {}).items()):
            entry: dict = {"name": name}
            if "defaultValue" in definition:
                entry["value"] = parameter_text(definition["defaultValue"], definition.get("parameterType", ""))
            parameters.append(entry)
        if root.get("inputDefinitions", {}).get("artifacts"):
            _fail("root", "a pipeline input artifact")
        root_name = self.dag_template(root, ["root"])
        # The exit handler runs on the image most of the pipeline's tasks use.
        images = [executor["container"]["image"] for executor in self.executors.values() if "container" in executor]
        image = max(sorted(set(images)), key=images.count)
        main = {
            "name": ENTRYPOINT,
            "dag": {
                "tasks": [
                    {
                        "name": PIPELINE_TASK,
                        "template": root_name,
                        # The run's outcome is decided by the exit handler, which puts the failed task's
                        # one-line reason into the Workflow's status message.
                        "continueOn": {"failed": True, "error": True},
                        "arguments": {
                            "parameters": [
                                {"name": p["name"], "value": "{{workflow.parameters.%s}}" % p["name"]}
                                for p in parameters
                            ]
                        },
                    }
                ]
            },
        }
        # It also tells the webhooks of the optional Secret mlops-notify how the run ended
        # (mlops/reporting/notify.py); without the Secret it sends nothing.
        exit_command = LAUNCHER + ["exit", "--pipeline-task", PIPELINE_TASK, "--failures", "{{workflow.failures}}"]
        exit_command += ["--status", "{{workflow.status}}", "--workflow", "{{workflow.name}}"]
        if any(p["name"] == "model_name" for p in parameters):
            exit_command += ["--model", "{{workflow.parameters.model_name}}"]
        exit_handler = {
            "name": EXIT_HANDLER,
            "metadata": {"labels": {LABEL_TASK: EXIT_HANDLER}},
            "container": {
                "image": image,
                "command": exit_command,
                "env": [
                    {
                        "name": config.NOTIFY.name,
                        "valueFrom": {
                            "secretKeyRef": {
                                "name": config.NOTIFY_SECRET_NAME,
                                "key": config.NOTIFY_SECRET_KEY,
                                "optional": True,
                            }
                        },
                    }
                ],
                "securityContext": dict(RESTRICTED),
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "250m", "memory": "256Mi"},
                },
            },
        }
        if not main["dag"]["tasks"][0]["arguments"]["parameters"]:
            del main["dag"]["tasks"][0]["arguments"]
        templates = [main, exit_handler] + sorted(self.templates, key=lambda t: t["name"])
        annotations = {ANNOTATION_SPEC: spec_sha256}
        if self.notes:
            annotations[ANNOTATION_NOTES] = "; ".join(sorted(self.notes))
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {
                "name": self.name,
                "labels": {LABEL_PIPELINE: self.name, "app.kubernetes.io/part-of": "kfp-mlops"},
                "annotations": annotations,
            },
            "spec": {
                "entrypoint": ENTRYPOINT,
                "onExit": EXIT_HANDLER,
                "serviceAccountName": config.ARGO_WORKFLOW_SERVICE_ACCOUNT,
                "podMetadata": {"labels": {LABEL_PIPELINE: self.name}},
                "securityContext": dict(POD_SECURITY),
                "arguments": {"parameters": parameters},
                "templates": templates,
            },
        }


def to_workflow_template(spec: dict, platform: dict | None, name: str, spec_sha256: str = "") -> dict:
    """The WorkflowTemplate of a compiled KFP pipeline spec (its two YAML documents, parsed).

    ``platform`` is the second document (``platforms.kubernetes``), or None. Raises
    :class:`TranslationError` naming the first IR feature it cannot carry.
    """
    executors = {}
    if platform:
        executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    return _Translator(spec, executors, name).translate(spec_sha256)


def translate_file(path, name: str | None = None) -> dict:
    """Read a compiled pipeline YAML file and translate it."""
    from pathlib import Path

    import yaml

    raw = Path(path).read_bytes()
    documents = [d for d in yaml.safe_load_all(raw) if d]
    spec = documents[0]
    platform = documents[1] if len(documents) > 1 else None
    pipeline_name = name or spec.get("pipelineInfo", {}).get("name") or Path(path).stem.replace("_", "-")
    return to_workflow_template(spec, platform, pipeline_name, hashlib.sha256(raw).hexdigest())


def dump(template: dict) -> str:
    """The template as YAML with a header saying where it comes from."""
    import yaml

    header = (
        "# Generated by `mlops compile` from the compiled KFP pipeline spec beside this file\n"
        "# (mlops/cluster/argo.py); do not edit. Run it: kubectl create -f manifests/runs/argo-run.yaml\n"
    )
    return header + yaml.safe_dump(template, sort_keys=False, width=120)
