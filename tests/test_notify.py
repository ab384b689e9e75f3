"""Notifications (mlops/reporting/notify.py) against a real webhook receiver on loopback.

The receiver is an http.server in a thread that records every request and answers as a
test scripts it (200, 500, a sleep past the timeout). Then the same through the CLI:
`mlops run` posts blessed and champion-moved, a failing run posts run-failed with its
one-line reason, `mlops monitor` posts its decision, and the Argo exit handler posts
how the Workflow ended. A webhook that is down or slow is one warning line, never a
failed run, and a webhook URL's secrets are never printed.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops.reporting import notify
from mlops.reporting.notify import EVENTS, Notifier, NotifyError, Webhook, parse_settings

MLOPS = str(Path(sys.executable).with_name("mlops"))
SECRETS = ("s3cret-pa55", "T0K3N-in-path", "qu3ry-token")


class Receiver:
    """A webhook on 127.0.0.1: ``requests`` holds (path, headers, JSON body) of each request;
    ``script`` the answers to give, in order (a status, or "sleep": answer only after the test ends)."""

    def __init__(self):
        self.requests: list[tuple[str, dict, dict]] = []
        self.script: list = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), json.loads(body)))
                action = receiver.script.pop(0) if receiver.script else 200
                if action == "sleep":
                    receiver.release.wait(30)
                    return  # the client gave up long ago: no answer (writing would only raise)
                self.send_response(action)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away (a timeout test): nothing to print into another test's output

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, event: str | None = None) -> list[dict]:
        return [body for _, _, body in self.requests if event is None or body.get("event") == event]


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def closed_url():
    """A loopback URL where nothing listens (connection refused), with secrets in every part."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://bot:{SECRETS[0]}@127.0.0.1:{port}/hook/{SECRETS[1]}?token={SECRETS[2]}"


@pytest.fixture
def fast(monkeypatch):
    """Short waits: retries back off 10 ms, an attempt times out after half a second."""
    monkeypatch.setenv("MLOPS_NOTIFY_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("MLOPS_NOTIFY_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("MLOPS_NOTIFY_RETRIES", "2")


def collect():
    lines: list[str] = []
    return lines, lines.append


# -- Settings -------------------------------------------------------------------------------------


def test_settings_file_with_url_env_formats_and_events(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_URL", "https://hooks.example.com/services/T0/B0/xyz")
    path = tmp_path / "notify.yaml"
    path.write_text(
        "notify:\n  webhooks:\n"
        "    - url: https://alerts.example.com/mlops\n"
        "    - url_env: HOOK_URL\n      format: slack\n      events: [run_failed, champion_moved]\n"
    )
    first, second = notify.load_settings(path)
    assert (first.format, first.events) == ("json", EVENTS)
    assert (second.url, second.format, second.events) == (
        "https://hooks.example.com/services/T0/B0/xyz",
        "slack",
        ("run_failed", "champion_moved"),
    )
    assert "xyz" not in repr(second) and second.shown == "https://hooks.example.com/…"
    assert notify.load_settings(None) == []


@pytest.mark.parametrize(
    "document, message",
    [
        ({"webhooks": []}, "must be a mapping with one key, notify"),
        ({"notify": {"hooks": []}}, "notify takes webhooks"),
        ({"notify": {"webhooks": [{"url": "ftp://x/y"}]}}, "notify.webhooks[1]: the URL must be http:// or https://"),
        ({"notify": {"webhooks": [{"url": "https://x/y", "format": "teams"}]}}, "format must be one of json, slack"),
        ({"notify": {"webhooks": [{"url": "https://x/y", "events": ["run_won"]}]}}, "unknown event 'run_won'"),
        (
            {"notify": {"webhooks": [{"url_env": "NO_SUCH_VARIABLE_HERE"}]}},
            "NO_SUCH_VARIABLE_HERE (url_env) is not set",
        ),
        ({"notify": {"webhooks": [{}]}}, "needs one of url or url_env"),
    ],
)
def test_settings_errors_are_one_line(document, message):
    with pytest.raises(NotifyError) as raised:
        parse_settings(document, "notify.yaml")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_url_is_refused_without_showing_its_secret():
    with pytest.raises(NotifyError) as raised:
        parse_settings({"notify": {"webhooks": [{"url": f"ftp://u:{SECRETS[0]}@host/{SECRETS[1]}"}]}})
    assert not any(secret in str(raised.value) for secret in SECRETS)


# -- Events and delivery --------------------------------------------------------------------------

EVENT_CASES = [
    (
        notify.run_failed("wine", "split: target 'nope'\nis not a column", run="r1"),
        {"model": "wine", "reason": "split: target 'nope' is not a column", "run": "r1", "source": "mlops run"},
    ),
    (
        notify.run_finished("wine", "Succeeded", run="wf-1"),
        {"model": "wine", "status": "Succeeded", "run": "wf-1", "source": "argo"},
    ),
    (
        notify.blessing("wine", 3, True, "skill 0.9 over a trivial predictor", metric="f1_macro", score=0.97),
        {"model": "wine", "version": 3, "blessed": True, "reason": "skill 0.9 over a trivial predictor"},
    ),
    (
        notify.blessing("wine", 4, False, "worse than champion v3", metric="f1_macro", score=0.5),
        {"model": "wine", "version": 4, "blessed": False, "metric": "f1_macro", "score": 0.5},
    ),
    (
        notify.champion_moved("wine", 3, 5, "blessed"),
        {"model": "wine", "previous": 3, "version": 5, "reason": "blessed"},
    ),
    (
        notify.drift_decision(
            {
                "decision": "retrain",
                "reasons": ["1 of 30 features drift: mean_radius"],
                "warnings": [],
                "model": {"name": "cancer", "version": 1},
                "data_version": "live@abc",
                "rows": 2000,
            },
            retrained_version=2,
        ),
        {"model": "cancer", "version": 1, "decision": "retrain", "data_version": "live@abc", "retrained_version": 2},
    ),
]


@pytest.mark.parametrize("event, fields", EVENT_CASES, ids=[case[0].kind for case in EVENT_CASES])
def test_each_event_is_posted_as_json_with_its_fields(receiver, fast, event, fields):
    lines, warn = collect()
    assert Notifier([Webhook(receiver.url + "/hook")], warn).send(event) == 1
    (path, headers, body), *_ = receiver.requests
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert body["event"] == event.kind and body["summary"] and body["time"]
    assert fields.items() <= body.items()
    assert lines == []


def test_slack_format_is_a_text_message(receiver, fast):
    event = notify.champion_moved("wine", None, 1, "blessed")
    assert Notifier([Webhook(receiver.url, format="slack")]).send(event) == 1
    assert receiver.bodies() == [{"text": "mlops run: wine@champion moved: no champion -> v1 (blessed)"}]


def test_a_webhook_gets_only_the_events_it_asked_for(receiver, fast):
    notifier = Notifier([Webhook(receiver.url, events=("run_failed",))])
    assert notifier.send(notify.champion_moved("wine", None, 1, "blessed")) == 0
    assert notifier.send(notify.run_failed("wine", "ingest: no such file")) == 1
    assert [body["event"] for body in receiver.bodies()] == ["run_failed"]


def test_two_server_errors_then_success_is_delivered_once(receiver, fast):
    receiver.script = [500, 500, 200]
    lines, warn = collect()
    assert Notifier([Webhook(receiver.url)], warn).send(notify.run_failed("wine", "boom")) == 1
    assert len(receiver.requests) == 3 and lines == []


def test_a_client_error_is_not_retried(receiver, fast):
    receiver.script = [404]
    lines, warn = collect()
    assert Notifier([Webhook(receiver.url)], warn).send(notify.run_failed("wine", "boom")) == 0
    assert len(receiver.requests) == 1
    assert lines == [f"warning: notify: run_failed not delivered to {receiver.url}/…: HTTP 404"]


def test_a_webhook_slower_than_the_timeout_is_one_warning(receiver, fast, monkeypatch):
    monkeypatch.setenv("MLOPS_NOTIFY_RETRIES", "1")
    receiver.script = ["sleep", "sleep"]
    lines, warn = collect()
    assert Notifier([Webhook(receiver.url)], warn).send(notify.run_failed("wine", "boom")) == 0
    assert lines == [f"warning: notify: run_failed not delivered to {receiver.url}/…: timed out (after 2 attempts)"]


def test_a_down_webhook_is_one_warning_and_its_secrets_are_never_shown(closed_url, fast, capsys):
    notifier = notify.Notifier(notify.parse_settings({"notify": {"webhooks": [{"url": closed_url}]}}))
    assert notifier.send(notify.run_failed("wine", "boom")) == 0  # and nothing raised
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("warning: notify: run_failed not delivered to http://REDACTED@127.0.0.1:")
    assert "(after 3 attempts)" in line
    assert not any(secret in captured.err for secret in SECRETS)


def test_user_info_in_the_url_is_sent_as_basic_authentication(receiver, fast):
    url = receiver.url.replace("http://", f"http://bot:{SECRETS[0]}@") + "/hook"
    assert Notifier(parse_settings({"notify": {"webhooks": [{"url": url}]}})).send(notify.run_failed("w", "x")) == 1
    path, headers, _ = receiver.requests[0]
    assert path == "/hook"
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode() == f"bot:{SECRETS[0]}"


# -- The Argo exit handler ------------------------------------------------------------------------


def exit_handler(failures: list, env: dict, *extra) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "mlops.runners.argo_task", "exit", "--pipeline-task", "pipeline"]
    argv += ["--failures", json.dumps(json.dumps(failures)), "--workflow", "training-pipeline-x7k2p", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


def settings_text(*urls, **webhook) -> str:
    return yaml.safe_dump({"notify": {"webhooks": [{"url": url, **webhook} for url in urls]}})


FAST_ENV = {"MLOPS_NOTIFY_BACKOFF_SECONDS": "0.01", "MLOPS_NOTIFY_TIMEOUT_SECONDS": "2", "MLOPS_NOTIFY_RETRIES": "1"}
FAILED = [
    {"displayName": "pipeline", "message": ""},
    {"displayName": "split", "message": "main: Error (exit code 1): split: target 'nope' is not a column"},
]


def test_the_exit_handler_posts_run_failed_and_still_fails_the_workflow(receiver):
    done = exit_handler(
        FAILED, {"MLOPS_NOTIFY": settings_text(receiver.url), **FAST_ENV}, "--status", "Failed", "--model", "wine"
    )
    assert done.returncode == 1 and done.stderr.strip() == "split: target 'nope' is not a column"
    (body,) = receiver.bodies()
    assert {"event": "run_failed", "model": "wine", "reason": "split: target 'nope' is not a column"}.items() <= (
        body.items()
    )
    assert body["run"] == "training-pipeline-x7k2p" and body["source"] == "argo"


def test_the_exit_handler_posts_run_finished_in_slack_format(receiver):
    env = {"MLOPS_NOTIFY": settings_text(receiver.url, format="slack"), **FAST_ENV}
    done = exit_handler([], env, "--status", "Succeeded", "--model", "wine")
    assert done.returncode == 0
    assert receiver.bodies() == [{"text": "argo: run training-pipeline-x7k2p of wine: Succeeded"}]


def test_the_exit_handler_without_settings_or_with_a_down_webhook_ends_as_before(closed_url):
    assert exit_handler(FAILED, {}, "--status", "Failed").stderr.strip() == "split: target 'nope' is not a column"
    done = exit_handler(FAILED, {"MLOPS_NOTIFY": settings_text(closed_url), **FAST_ENV}, "--status", "Failed")
    assert done.returncode == 1
    warning, reason = done.stderr.strip().splitlines()
    assert (
        warning.startswith("warning: notify: run_failed not delivered")
        and reason == "split: target 'nope' is not a column"
    )
    assert not any(secret in done.stderr + done.stdout for secret in SECRETS)
    broken = exit_handler([], {"MLOPS_NOTIFY": "notify: [", **FAST_ENV}, "--status", "Succeeded")
    assert broken.returncode == 0 and broken.stderr.startswith("warning: notify: MLOPS_NOTIFY is not valid YAML")


# -- The CLI --------------------------------------------------------------------------------------


def mlops(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLOPS, *args], cwd=cwd, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )


def test_a_failing_run_posts_run_failed_with_its_one_line_reason(receiver, closed_url, demo_data, tmp_path):
    settings = tmp_path / "notify.yaml"
    settings.write_text(settings_text(receiver.url + "/run", closed_url))
    result = mlops(
        "run",
        "--data",
        str(demo_data["wine"]),
        "--target",
        "nope",
        "--notify",
        str(settings),
        cwd=tmp_path,
        env={**FAST_ENV, "MLOPS_TFDV_SIDECAR": "off"},  # it fails before validate: no warm TFDV needed
    )
    assert result.returncode == 1, result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
    (body,) = receiver.bodies()
    assert body["event"] == "run_failed" and body["model"] == "demo-wine" and body["source"] == "mlops run"
    assert body["reason"] == error.removeprefix("Error: ") and "nope" in body["reason"]
    # the webhook that is down: one warning line, the same exit status, no secret printed
    assert sum(line.startswith("warning: notify:") for line in result.stderr.splitlines()) == 1
    assert not any(secret in result.stdout + result.stderr for secret in SECRETS)


def test_bad_notify_settings_stop_the_run_before_it_starts(demo_data, tmp_path):
    settings = tmp_path / "notify.yaml"
    settings.write_text("notify:\n  webhooks:\n    - url: https://x.example/h\n      format: teams\n")
    result = mlops(
        "run", "--data", str(demo_data["wine"]), "--target", "target", "--notify", str(settings), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: notify settings {settings}: notify.webhooks[1]")
    assert "run:" not in result.stdout


@pytest.mark.e2e
@pytest.mark.tfdv
def test_a_run_posts_blessed_and_champion_moved_and_the_monitor_its_decision(receiver, closed_url, demo_data, tmp_path):
    settings = tmp_path / "notify.yaml"
    settings.write_text(settings_text(receiver.url, closed_url))
    env = {**FAST_ENV, "MLOPS_NOTIFY_FILE": str(settings)}  # the environment's settings, as a scheduler sets them
    result = mlops("run", "--data", str(demo_data["wine"]), "--target", "target", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr  # the webhook that is down does not fail it
    assert "blessed: yes, now the champion" in result.stdout
    assert [body["event"] for body in receiver.bodies()] == ["model_blessed", "champion_moved"]
    blessed, moved = receiver.bodies()
    assert {"model": "demo-wine", "version": 1, "blessed": True, "metric": "f1_macro"}.items() <= blessed.items()
    assert blessed["score"] > 0.8 and blessed["reason"].startswith("test f1_macro")
    assert {"model": "demo-wine", "previous": None, "version": 1}.items() <= moved.items()
    assert sum(line.startswith("warning: notify:") for line in result.stderr.splitlines()) == 2
    assert not any(secret in result.stdout + result.stderr for secret in SECRETS)

    pd.read_csv(demo_data["wine"]).sample(1000, replace=True, random_state=1).to_csv(tmp_path / "live.csv", index=False)
    receiver.requests.clear()
    watched = mlops("monitor", "--data", "live.csv", "--model-name", "demo-wine", "--json", cwd=tmp_path, env=env)
    assert watched.returncode != 1 and watched.stdout.startswith("{"), watched.stderr  # a decision, whichever
    record = json.loads(watched.stdout)
    (decision,) = receiver.bodies()
    assert decision["event"] == "drift_decision" and decision["decision"] == record["decision"]
    assert decision["reasons"] == record["reasons"] and decision["data_version"] == record["data_version"]
    assert (decision["model"], decision["version"]) == ("demo-wine", 1)
