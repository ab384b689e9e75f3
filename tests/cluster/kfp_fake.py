"""A small in-memory fake of the KFP v2beta1 REST API, for contract tests.

It implements only the endpoints `mlops submit` and `mlops schedules sync` use,
and it is strict where a real server would be: every JSON request body must
match the kfp_server_api model of that endpoint (no unknown fields, right types,
enum values), query parameters must be ones the generated API client sends,
and runs and recurring runs must reference an existing experiment, pipeline and
version whose compiled spec declares every parameter passed.
Each request is recorded in `calls` as (method, path) for the tests to count.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import kfp_server_api
import yaml
from kfp_server_api import models as m

API = "/apis/v2beta1"
# int64 fields: grpc-gateway accepts a JSON number or a decimal string.
_INT64 = {"max_concurrency", "interval_second"}
_LIST_PARAMS = {"page_token", "page_size", "sort_by", "filter", "experiment_id", "namespace"}


class ContractError(AssertionError):
    """A request that the real KFP API would reject or that violates the models."""


def check_model(model_name: str, data, path: str = "$") -> None:
    """Raise ContractError unless `data` is a valid JSON form of kfp_server_api model."""
    cls = getattr(m, model_name)
    if getattr(cls, "allowable_values", None) and not cls.openapi_types:
        # protojson takes an enum's name or its number
        if isinstance(data, int) and not isinstance(data, bool) and 0 <= data < len(cls.allowable_values):
            return
        if data not in cls.allowable_values:
            raise ContractError(f"{path}: {data!r} not in {cls.allowable_values}")
        return
    if not isinstance(data, dict):
        raise ContractError(f"{path}: expected an object for {model_name}, got {data!r}")
    json_to_attr = {v: k for k, v in cls.attribute_map.items()}
    for key, value in data.items():
        if key not in json_to_attr:
            raise ContractError(f"{path}.{key}: unknown field of {model_name}")
        if value is None:
            continue
        check_type(cls.openapi_types[json_to_attr[key]], value, f"{path}.{key}", key)


def check_type(kind: str, value, path: str, field: str = "") -> None:
    if kind == "str":
        if field in _INT64 and (isinstance(value, int) or str(value).isdigit()):
            return
        if not isinstance(value, str):
            raise ContractError(f"{path}: expected a string, got {value!r}")
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ContractError(f"{path}: expected an integer, got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ContractError(f"{path}: expected a boolean, got {value!r}")
    elif kind == "datetime":
        if not isinstance(value, str):
            raise ContractError(f"{path}: expected an RFC 3339 string, got {value!r}")
    elif kind == "object":
        return
    elif kind.startswith("list["):
        if not isinstance(value, list):
            raise ContractError(f"{path}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            check_type(kind[5:-1], item, f"{path}[{i}]")
    elif kind.startswith("dict("):
        if not isinstance(value, dict):
            raise ContractError(f"{path}: expected a map, got {value!r}")
        inner = kind[5:-1].split(", ", 1)[1]
        for k, item in value.items():
            check_type(inner, item, f"{path}.{k}")
    else:
        check_model(kind, value, path)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKFP:
    """State of the fake server. Use as a context manager; `url` is the host."""

    def __init__(self):
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.specs: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.final_run_state = "SUCCEEDED"
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for mt, p in self.calls if mt == method and re.fullmatch(pattern, p))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    # -- helpers -----------------------------------------------------------
    @staticmethod
    def _filtered(items, query):
        raw = query.get("filter")
        if not raw:
            return list(items)
        flt = json.loads(raw)
        # The filter is parsed with protojson, which takes proto names and their
        # lowerCamel JSON names alike (kfp's own helpers send "stringValue").
        for pred in flt.get("predicates", []):
            for key in [k for k in pred if re.search("[A-Z]", k)]:
                pred[re.sub("([A-Z])", lambda c: "_" + c.group(1).lower(), key)] = pred.pop(key)
        check_model("V2beta1Filter", flt, "filter")
        out = list(items)
        for pred in flt.get("predicates", []):
            if pred.get("operation") not in ("EQUALS", 1):
                raise ContractError(f"filter: only EQUALS is used by our code, got {pred}")
            if pred.get("key") not in ("display_name", "name"):
                raise ContractError(f"filter: unsupported key {pred.get('key')!r}")
            out = [i for i in out if i.get("display_name") == pred.get("string_value")]
        return out

    def _check_params(self, body, path):
        ref = body.get("pipeline_version_reference") or {}
        pid, vid = ref.get("pipeline_id"), ref.get("pipeline_version_id")
        if body.get("pipeline_spec") is not None:
            raise ContractError(f"{path}: we always reference an uploaded version")
        if pid not in self.pipelines or vid not in self.versions or self.versions[vid]["pipeline_id"] != pid:
            raise ContractError(f"{path}: unknown pipeline/version {pid}/{vid}")
        if body.get("experiment_id") not in self.experiments:
            raise ContractError(f"{path}: unknown experiment {body.get('experiment_id')}")
        declared = self.specs[vid]["root"]["inputDefinitions"]["parameters"]
        given = (body.get("runtime_config") or {}).get("parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise ContractError(f"{path}: parameters not in the spec: {sorted(unknown)}")
        required = {n for n, p in declared.items() if not p.get("isOptional") and "defaultValue" not in p}
        if required - set(given):
            raise ContractError(f"{path}: missing required parameters {sorted(required - set(given))}")
        if not body.get("display_name"):
            raise ContractError(f"{path}: display_name is required")

    # -- request handling ----------------------------------------------------
    def handle(self, method: str, url: str, headers, body: bytes):
        parsed = urlparse(url)
        path = parsed.path
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.calls.append((method, path))
        p = path[len(API) :] if path.startswith(API) else None
        if p is None:
            return 404, {"error": "not found"}
        if (
            method == "GET"
            and p in ("/experiments", "/pipelines", "/runs", "/recurringruns")
            or (method == "GET" and p.endswith("/versions"))
        ):
            if set(query) - _LIST_PARAMS:
                raise ContractError(f"{path}: unexpected query {sorted(set(query) - _LIST_PARAMS)}")
        js = json.loads(body) if body and "json" in (headers.get("Content-Type") or "") else None

        if method == "GET" and p == "/healthz":
            return 200, {"multi_user": False}
        if p == "/experiments":
            if method == "GET":
                return 200, {"experiments": self._filtered(self.experiments.values(), query) or None}
            check_model("V2beta1Experiment", js, "experiment")
            if not js.get("display_name"):
                raise ContractError("experiment: display_name is required")
            exp = {"experiment_id": self.new_id("exp"), "display_name": js["display_name"], "created_at": _now()}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if p == "/pipelines" and method == "GET":
            return 200, {"pipelines": self._filtered(self.pipelines.values(), query) or None}
        if p in ("/pipelines/upload", "/pipelines/upload_version") and method == "POST":
            spec = self._uploaded_spec(headers, body)
            if p == "/pipelines/upload":
                if not query.get("name"):
                    raise ContractError("upload: name is required")
                pipe = {
                    "pipeline_id": self.new_id("pipe"),
                    "display_name": query["name"],
                    "name": query["name"],
                    "created_at": _now(),
                }
                self.pipelines[pipe["pipeline_id"]] = pipe
                pid, vname = pipe["pipeline_id"], query["name"]
            else:
                pid, vname = query.get("pipelineid"), query.get("name")
                if pid not in self.pipelines or not vname:
                    raise ContractError(f"upload_version: bad pipelineid/name {query}")
                if any(v["pipeline_id"] == pid and v["display_name"] == vname for v in self.versions.values()):
                    return 409, {"error": f"version {vname} already exists"}
            ver = {
                "pipeline_version_id": self.new_id("ver"),
                "pipeline_id": pid,
                "display_name": vname,
                "name": vname,
                "created_at": _now(),
            }
            self.versions[ver["pipeline_version_id"]] = ver
            self.specs[ver["pipeline_version_id"]] = spec
            return 200, (self.pipelines[pid] if p == "/pipelines/upload" else ver)
        mv = re.fullmatch(r"/pipelines/([^/]+)/versions", p)
        if mv and method == "GET":
            vs = [v for v in self.versions.values() if v["pipeline_id"] == mv.group(1)]
            return 200, {"pipeline_versions": self._filtered(vs, query) or None}
        if p == "/runs":
            if method == "GET":
                runs = [
                    r
                    for r in self.runs.values()
                    if not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"]
                ]
                return 200, {"runs": self._filtered(runs, query) or None}
            check_model("V2beta1Run", js, "run")
            self._check_params(js, "run")
            run = {**js, "run_id": self.new_id("run"), "state": "PENDING", "created_at": _now()}
            self.runs[run["run_id"]] = run
            return 200, run
        mr = re.fullmatch(r"/runs/([^/:]+)", p)
        if mr and method == "GET":
            run = self.runs.get(mr.group(1))
            if run is None:
                return 404, {"error": "no such run"}
            run["state"] = self.final_run_state  # finishes on the first poll
            return 200, run
        if p == "/recurringruns":
            if method == "GET":
                rrs = [
                    r
                    for r in self.recurring.values()
                    if not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"]
                ]
                return 200, {"recurringRuns": self._filtered(rrs, query) or None}
            check_model("V2beta1RecurringRun", js, "recurring_run")
            self._check_params(js, "recurring_run")
            cron = ((js.get("trigger") or {}).get("cron_schedule") or {}).get("cron", "")
            if len(cron.split()) != 6:
                raise ContractError(f"recurring_run: cron must have 6 fields, got {cron!r}")
            if js.get("mode") not in ("ENABLE", "DISABLE"):
                raise ContractError(f"recurring_run: mode must be set, got {js.get('mode')!r}")
            rr = {**js, "recurring_run_id": self.new_id("rr"), "created_at": _now()}
            self.recurring[rr["recurring_run_id"]] = rr
            return 200, rr
        mrr = re.fullmatch(r"/recurringruns/([^/:]+)(:enable|:disable)?", p)
        if mrr:
            rr = self.recurring.get(mrr.group(1))
            if rr is None:
                return 404, {"error": "no such recurring run"}
            if method == "POST" and mrr.group(2):
                rr["mode"] = "ENABLE" if mrr.group(2) == ":enable" else "DISABLE"
                return 200, {}
            if method == "DELETE" and not mrr.group(2):
                del self.recurring[mrr.group(1)]
                return 200, {}
            if method == "GET" and not mrr.group(2):
                return 200, rr
        return 404, {"error": f"{method} {path} is not implemented by the fake"}

    @staticmethod
    def _uploaded_spec(headers, body) -> dict:
        ctype = headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ContractError(f"upload: expected multipart/form-data, got {ctype!r}")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body
        )
        parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
        if "uploadfile" not in parts:
            raise ContractError(f"upload: no 'uploadfile' part, got {sorted(parts)}")
        spec = next(yaml.safe_load_all(parts["uploadfile"].get_payload(decode=True)))
        if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
            raise ContractError("upload: the file is not a compiled KFP pipeline spec")
        return spec

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    with fake._lock:
                        status, payload = fake.handle(self.command, self.path, self.headers, body)
                except ContractError as err:
                    fake.calls.append(("CONTRACT-ERROR", str(err)))
                    status, payload = 400, {"error": str(err), "code": 3}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        return Handler


def contract_errors(fake: FakeKFP) -> list[str]:
    return [p for mt, p in fake.calls if mt == "CONTRACT-ERROR"]


__all__ = ["FakeKFP", "ContractError", "check_model", "contract_errors", "kfp_server_api"]
