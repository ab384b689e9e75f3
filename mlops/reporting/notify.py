"""Notifications: what happened to a run or a model, posted as JSON to webhooks.

The settings are a ``notify:`` section in a small YAML file of their own (``mlops run
--notify FILE``, ``mlops monitor --notify FILE`` or ``MLOPS_NOTIFY_FILE``; on a cluster
the Secret ``mlops-notify``, key ``notify.yaml``)::

    notify:
      webhooks:
        - url: https://alerts.example.com/hooks/mlops          # generic JSON, every event
        - url_env: SLACK_WEBHOOK_URL                          # the URL from the environment
          format: slack                                       # {"text": "..."}
          events: [run_failed, champion_moved, drift_decision]

Events (:data:`EVENTS`): ``run_failed`` (with the one-line reason), ``run_finished`` (a
cluster run's end), ``model_blessed`` / ``model_not_blessed`` (with the reason),
``champion_moved`` and ``drift_decision``. A delivery is retried with backoff on a
connection error, a timeout, 429 or 5xx (``MLOPS_NOTIFY_RETRIES``,
``MLOPS_NOTIFY_BACKOFF_SECONDS``, ``MLOPS_NOTIFY_TIMEOUT_SECONDS``); one that still fails
is one warning line and never fails the run. A webhook's URL is a secret (Slack's is a
token in its path): it is shown as its scheme and host only, through
:func:`mlops.data.uris.redact`, and never written into a payload.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops import config
from mlops.data.uris import redact, split_userinfo
from mlops.errors import MlopsError, printable, quote

EVENTS = ("run_failed", "run_finished", "model_blessed", "model_not_blessed", "champion_moved", "drift_decision")
FORMATS = ("json", "slack")
_WEBHOOK_KEYS = {"url", "url_env", "format", "events"}
# HTTP statuses worth another attempt: the receiver is busy or broken for now.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "mlops-notify/1"


class NotifyError(MlopsError):
    """Notification settings that cannot be used."""


def shown_url(url: str) -> str:
    """The part of a webhook URL that may be printed: scheme and host, with any user-info redacted.

    The path and query are dropped too, since many webhooks carry their token there.

    >>> shown_url("https://hooks.slack.com/services/T0/B0/secret")
    'https://hooks.slack.com/…'
    >>> shown_url("http://bot:pa55@127.0.0.1:8080/hook?token=x")
    'http://REDACTED@127.0.0.1:8080/…'
    """
    parts = urlsplit(redact(url))
    return f"{parts.scheme}://{parts.netloc}/…" if parts.scheme and parts.netloc else "<webhook URL>"


@dataclass(frozen=True)
class Webhook:
    """One receiver: where, in which format, and which events it wants."""

    url: str = field(repr=False)  # never in a repr, a log line or a message
    format: str = "json"
    events: tuple[str, ...] = EVENTS

    @property
    def shown(self) -> str:
        return shown_url(self.url)


def parse_settings(document, source: str = "notify settings", environ=None) -> list[Webhook]:
    """The webhooks of a settings document (a YAML file's content: ``{"notify": {"webhooks": [...]}}``).

    One :class:`NotifyError` line per problem, naming the setting and never the URL.
    ``url_env`` names the variable that holds the URL (read from ``environ``, default
    ``os.environ``), so the file itself can hold no secret.
    """
    environ = os.environ if environ is None else environ
    if document is None:
        return []
    if not isinstance(document, dict) or set(document) != {"notify"}:
        raise NotifyError(f"{source} must be a mapping with one key, notify (its webhooks: a list)")
    section = document["notify"] or {}
    if not isinstance(section, dict) or set(section) - {"webhooks"}:
        raise NotifyError(f"{source}: notify takes webhooks (a list of url, format, events)")
    entries = section.get("webhooks") or []
    if not isinstance(entries, list):
        raise NotifyError(f"{source}: notify.webhooks must be a list")
    webhooks = []
    for number, entry in enumerate(entries, 1):
        where = f"{source}: notify.webhooks[{number}]"
        if not isinstance(entry, dict) or set(entry) - _WEBHOOK_KEYS:
            raise NotifyError(f"{where} takes {', '.join(sorted(_WEBHOOK_KEYS))}")
        if ("url" in entry) == ("url_env" in entry):
            raise NotifyError(f"{where} needs one of url or url_env")
        if "url_env" in entry:
            url = environ.get(str(entry["url_env"]), "").strip()
            if not url:
                raise NotifyError(f"{where}: the variable {printable(entry['url_env'])} (url_env) is not set")
        else:
            url = str(entry["url"]).strip()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise NotifyError(f"{where}: the URL must be http:// or https://, got {shown_url(url)}")
        kind = entry.get("format", "json")
        if kind not in FORMATS:
            raise NotifyError(f"{where}: format must be one of {', '.join(FORMATS)}, got {quote(kind)}")
        events = entry.get("events", list(EVENTS))
        if not isinstance(events, list) or not events:
            raise NotifyError(f"{where}: events must be a non-empty list of {', '.join(EVENTS)}")
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise NotifyError(f"{where}: unknown event {quote(unknown[0])}; known: {', '.join(EVENTS)}")
        webhooks.append(Webhook(url=url, format=kind, events=tuple(events)))
    return webhooks


def parse_text(text: str, source: str = "notify settings") -> list[Webhook]:
    """The webhooks of a settings file's text."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise NotifyError(f"{source} is not valid YAML: {error}") from None
    return parse_settings(document, source)


def load_settings(path: str | Path | None) -> list[Webhook]:
    """The webhooks in a settings file (none without a file)."""
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotifyError(f"notify settings file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NotifyError(f"cannot read the notify settings file {path}: {error}") from None
    return parse_text(text, f"notify settings {path}")


# -- Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something to tell: its kind, one line for a person, and the fields for a program."""

    kind: str
    summary: str
    fields: dict

    def payload(self, kind: str = "json") -> dict:
        """The request body: generic JSON (``event``, ``summary``, ``time`` and the fields), or Slack's."""
        if kind == "slack":
            return {"text": self.summary}
        return {"event": self.kind, "summary": self.summary, **self.fields}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _event(kind: str, summary: str, **fields) -> Event:
    return Event(kind, printable(" ".join(summary.split()), 2000), {**fields, "time": _now()})


def run_failed(model: str | None, reason: str, *, run: str = "", source: str = "mlops run") -> Event:
    return _event(
        "run_failed",
        f"{source}: run of {model or 'a model'} failed: {reason}",
        model=model,
        reason=" ".join(reason.split()),
        run=run,
        source=source,
    )


def run_finished(model: str | None, status: str, *, run: str = "", source: str = "argo") -> Event:
    return _event(
        "run_finished",
        f"{source}: run {run} of {model or 'a model'}: {status}",
        model=model,
        status=status,
        run=run,
        source=source,
    )


def blessing(
    model: str,
    version: int,
    blessed: bool,
    reason: str,
    *,
    metric: str,
    score: float | None,
    run: str = "",
    source: str = "mlops run",
) -> Event:
    verdict = "blessed" if blessed else "not blessed"
    return _event(
        "model_blessed" if blessed else "model_not_blessed",
        f"{source}: {model}@{version} {verdict}: {reason}",
        model=model,
        version=version,
        blessed=blessed,
        reason=reason,
        metric=metric,
        score=score,
        run=run,
        source=source,
    )


def champion_moved(
    model: str, previous: int | None, version: int, reason: str, *, run: str = "", source: str = "mlops run"
) -> Event:
    was = f"v{previous}" if previous is not None else "no champion"
    return _event(
        "champion_moved",
        f"{source}: {model}@champion moved: {was} -> v{version} ({reason})",
        model=model,
        previous=previous,
        version=version,
        reason=reason,
        run=run,
        source=source,
    )


def drift_decision(record: dict, *, retrained_version: int | None = None, run: str = "", source: str = "mlops monitor"):
    """The monitor's decision record (mlops.stages.monitor.Decision) as an event."""
    model = record.get("model") or {}
    reasons = list(record.get("reasons") or [])
    held = record.get("retrain_held")
    detail = "; ".join(reasons + ([held] if held else [])) or "no drift"
    return _event(
        "drift_decision",
        f"{source}: {model.get('name')}@{model.get('version')} on {record.get('data_version')}: "
        f"{record.get('decision')} ({detail})",
        model=model.get("name"),
        version=model.get("version"),
        decision=record.get("decision"),
        reasons=reasons,
        warnings=list(record.get("warnings") or []),
        retrain_held=held,
        retrained_version=retrained_version,
        data_version=record.get("data_version"),
        rows=record.get("rows"),
        run=run,
        source=source,
    )


# -- Delivery -------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers; it is not followed elsewhere (a redirect is a failed delivery)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913 - urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, timeout: float) -> int:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    userinfo, bare = split_userinfo(url)
    if userinfo is not None:  # https://user:token@host/...: HTTP basic authentication (urllib does not)
        headers["Authorization"] = "Basic " + base64.b64encode(unquote(userinfo).encode("utf-8")).decode("ascii")
    request = urllib.request.Request(bare, data=body, method="POST", headers=headers)
    with _OPENER.open(request, timeout=timeout) as response:
        response.read(65536)
        return response.status


def deliver(
    webhook: Webhook,
    event: Event,
    *,
    timeout: float | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """POST ``event`` to ``webhook``; None when delivered, else why not (a line without the URL).

    Retries a connection error, a timeout, 408/425/429 or 5xx, waiting ``backoff`` seconds,
    then twice as long, and so on; another status (a 404, say) is not retried.
    """
    timeout = config.NOTIFY_TIMEOUT_SECONDS.get() if timeout is None else timeout
    retries = config.NOTIFY_RETRIES.get() if retries is None else retries
    backoff = config.NOTIFY_BACKOFF_SECONDS.get() if backoff is None else backoff
    body = json.dumps(event.payload(webhook.format), sort_keys=True).encode("utf-8")
    why = "not attempted"
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            status = _post(webhook.url, body, timeout)
        except urllib.error.HTTPError as error:
            why = f"HTTP {error.code}"
            if error.code not in _RETRY_STATUSES:
                return why
            continue
        except (TimeoutError, urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            why = "timed out" if isinstance(reason, TimeoutError) else f"{type(reason).__name__}: {reason}"
            continue
        if 200 <= status < 300:
            return None
        why = f"HTTP {status}"
        if status not in _RETRY_STATUSES:
            return why
    return f"{why} (after {retries + 1} attempt{'s' if retries else ''})"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Notifier:
    """Sends events to the webhooks that want them; never raises, warns once per failed delivery."""

    def __init__(self, webhooks: list[Webhook], warn: Callable[[str], None] = _stderr):
        self.webhooks, self.warn = list(webhooks), warn

    def __bool__(self) -> bool:
        return bool(self.webhooks)

    def send(self, event: Event) -> int:
        """Deliver ``event`` to every webhook that subscribed to its kind; how many took it."""
        delivered = 0
        for webhook in self.webhooks:
            if event.kind not in webhook.events:
                continue
            try:
                why = deliver(webhook, event)
            except Exception as error:  # noqa: BLE001 - a notification never fails the run it reports on
                why = f"{type(error).__name__}: {error}"
            if why is None:
                delivered += 1
                continue
            # The reason comes from the HTTP stack: make sure it cannot carry the URL.
            why = why.replace(webhook.url, webhook.shown)
            self.warn(f"warning: notify: {event.kind} not delivered to {webhook.shown}: {printable(why, 300)}")
        return delivered


def notifier_from_environment(warn: Callable[[str], None] = _stderr) -> Notifier:
    """The webhooks of MLOPS_NOTIFY (the settings' text: on a cluster, from the Secret mlops-notify),
    else of the file MLOPS_NOTIFY_FILE; settings that cannot be used are one warning line and
    no webhooks, since this is for places that must not fail (an exit handler)."""
    try:
        text = config.NOTIFY.get()
        if text:
            return Notifier(parse_text(text, config.NOTIFY.name), warn)
        return Notifier(load_settings(config.NOTIFY_FILE.get()), warn)
    except MlopsError as error:
        warn(f"warning: notify: {error}; nothing is sent")
        return Notifier([], warn)
