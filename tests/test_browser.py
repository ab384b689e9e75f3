"""What a person sees: the run reports, a monitor report and the registry browser, loaded in a real
headless Chromium (Debian's) with the network off. Charts must be there and not empty, and no
request may leave the machine. Screenshots are kept in test-artifacts/screenshots/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops.config import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.tfdv, pytest.mark.browser]
MLOPS = str(Path(sys.executable).with_name("mlops"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (CI must apt-get install chromium)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The flags a closed network needs: no background fetches, no updates, no sync.
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, demo_data):
    """A store with a classification run, a regression run, and a monitor decision."""
    work = tmp_path_factory.mktemp("browser")
    for name in ("wine", "diabetes"):
        result = subprocess.run(
            [MLOPS, "run", "--data", str(demo_data[name]), "--target", "target"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr
    wine = pd.read_csv(demo_data["wine"])
    live = wine.sample(600, replace=True, random_state=1).drop(columns=["target"])
    live["alcohol"] += 1.5
    live.to_csv(work / "live.csv", index=False)
    result = subprocess.run(
        [MLOPS, "monitor", "--data", "live.csv", "--model-name", "demo-wine"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return work


def guarded_page(browser, allowed_prefix: str = "file://"):
    """A new page on which every request outside ``allowed_prefix`` is refused, and recorded in the list returned."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside = []

    def route(request_route):
        if request_route.request.url.startswith(allowed_prefix) or request_route.request.url.startswith("data:"):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return page, outside


def visit(browser, url: str, screenshot: str, allowed_prefix: str = "file://") -> dict:
    """Open ``url`` with every request outside ``allowed_prefix`` refused and recorded; describe the charts."""
    page, outside = guarded_page(browser, allowed_prefix)
    page.goto(url)
    charts = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(svg => {
        const box = svg.getBoundingClientRect();
        return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height,
                marks: svg.querySelectorAll('path, rect, use, line').length};
    })""")
    links = page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    page.close()
    return {"charts": charts, "outside": outside, "links": links}


def assert_charts(seen: dict, labels: set[str]) -> None:
    assert not seen["outside"], f"requests left the machine: {seen['outside']}"
    found = {chart["label"]: chart for chart in seen["charts"]}
    assert labels <= set(found), f"missing charts: {labels - set(found)}"
    for label in labels:
        chart = found[label]
        assert chart["width"] > 50 and chart["height"] > 50 and chart["marks"] > 5, chart


def _report(work: Path, model: str) -> Path:
    return next((work / ".mlops" / "reports" / model).glob("v*.html"))


def test_a_classification_report_shows_its_charts_offline(browser, workspace):
    seen = visit(browser, _report(workspace, "demo-wine").as_uri(), "report-classification.png")
    assert_charts(
        seen,
        {
            "feature distributions by split",
            "candidates compared",
            "confusion matrix",
            "ROC curves",
            "precision-recall curves",
            "calibration curve",
            "permutation importance",
        },
    )


def test_a_regression_report_shows_its_charts_offline(browser, workspace):
    seen = visit(browser, _report(workspace, "demo-diabetes").as_uri(), "report-regression.png")
    assert_charts(
        seen,
        {
            "feature distributions by split",
            "candidates compared",
            "predicted vs actual and residuals",
            "permutation importance",
        },
    )


def test_a_monitor_report_shows_baseline_against_live(browser, workspace):
    report = next((workspace / ".mlops" / "reports" / "demo-wine" / "monitor").glob("*.html"))
    seen = visit(browser, report.as_uri(), "monitor.png")
    assert_charts(seen, {"baseline vs live distributions"})


def test_the_registry_browser_lists_models_and_opens_their_reports(browser, workspace):
    from mlops.reporting.registry_site import SiteBuilder, serve
    from mlops.store.fs import FileStore

    site = workspace / "site"
    SiteBuilder(FileStore(workspace / ".mlops"), site).build()
    server, _ = serve(site, 0)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        index = visit(browser, base + "index.html", "registry.png", allowed_prefix=base)
        assert not index["outside"]
        assert {"models/demo-wine.html", "models/demo-diabetes.html", "monitor/demo-wine.html"} <= set(index["links"])
        card = visit(browser, base + "models/demo-wine.html", "model-card.png", allowed_prefix=base)
        assert_charts(card, {"test f1_macro over versions"})
        version = visit(browser, base + "models/demo-wine/v1.html", "version.png", allowed_prefix=base)
        report = next(link for link in version["links"] if link.endswith(".html") and "reports/" in link)
        opened = visit(browser, base + "models/demo-wine/" + report, "report-via-browser.png", allowed_prefix=base)
        assert_charts(opened, {"confusion matrix"})
    finally:
        server.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlops_ui_serves_on_loopback_only_and_read_only(workspace):
    import time
    import urllib.request

    port = free_port()
    process = subprocess.Popen([MLOPS, "ui", "--port", str(port)], cwd=workspace, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert b"demo-wine" in response.read()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/index.html", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError, match="405"):
            urllib.request.urlopen(request, timeout=10)
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        process.terminate()
        process.wait(timeout=10)
        time.sleep(0.1)


# -- Local runs compared, in the live `mlops ui` ------------------------------------------------------

ONE_CANDIDATE = "metric: auto\ncandidates:\n  classification:\n    logistic_regression: {C: [1.0]}\n"


def _run(work: Path, data: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLOPS, "run", "--data", data, "--target", "target", "--params", "params.yaml", *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def runs_workspace(tmp_path_factory, demo_data):
    """A store with two local runs: one that succeeded, and one with another seed on data with values
    the curated schema refuses (it fails at validate, after ingest published its data version)."""
    work = tmp_path_factory.mktemp("browser-runs")
    (work / "params.yaml").write_text(ONE_CANDIDATE)
    (work / "bad").mkdir()
    wine = pd.read_csv(demo_data["wine"])
    wine.assign(alcohol=wine["alcohol"].map(lambda v: f"{v} %")).to_csv(work / "bad" / "demo-wine.csv", index=False)
    assert _run(work, str(demo_data["wine"])).returncode == 0
    assert _run(work, "bad/demo-wine.csv", "--seed", "7").returncode == 1
    return work


def test_the_live_ui_compares_runs_and_shows_a_new_run_on_reload(browser, runs_workspace):
    port = free_port()
    process = subprocess.Popen(
        [MLOPS, "ui", "--port", str(port)], cwd=runs_workspace, stdout=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}/"
    page = None
    try:
        assert base in process.stdout.readline()
        page, outside = guarded_page(browser, allowed_prefix=base)
        page.goto(base + "index.html")
        page.click("text=2 local runs")
        ids = page.eval_on_selector_all("input[name=run]", "boxes => boxes.map(b => b.value)")
        assert len(ids) == 2 and "failed" in page.inner_text("table")
        for box in page.query_selector_all("input[name=run]"):
            box.check()
        page.click("text=Compare the ticked runs")
        assert page.url.startswith(base + "runs/compare.html?run=")
        differs = page.eval_on_selector_all(
            "tr.differs", "rows => rows.map(r => r.dataset.section + ': ' + r.dataset.name)"
        )
        same = page.eval_on_selector_all("tr.same", "rows => rows.map(r => r.dataset.section + ': ' + r.dataset.name)")
        assert {"parameters: seed", "data: version", "data: source"} <= set(differs), differs
        assert {"parameters: target", "parameters: test_fraction", "code: packages.numpy"} <= set(same), same
        # the difference is visible, not only marked up
        marked = page.eval_on_selector("tr.differs td", "cell => getComputedStyle(cell).backgroundColor")
        plain = page.eval_on_selector("tr.same td", "cell => getComputedStyle(cell).backgroundColor")
        assert marked != plain
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "runs-compared.png"), full_page=True)

        # Live: a run made after the ui started is there when the page is loaded again.
        page.goto(base + "runs/index.html")
        assert _run(runs_workspace, "bad/demo-wine.csv", "--seed", "9").returncode == 1
        page.reload()
        after = page.eval_on_selector_all("input[name=run]", "boxes => boxes.map(b => b.value)")
        assert len(after) == 3 and set(ids) < set(after)
        page.goto(base + "index.html")
        assert "3 local runs" in page.inner_text("body")
        assert not outside, f"requests left the machine: {outside}"
    finally:
        if page is not None:
            page.close()
        process.terminate()
        process.wait(timeout=10)
