"""The report pages in a real headless browser: they load with no console error, the matrix and the
charts are there and drawn, a failing cell opens its detail, and full-page screenshots are saved.

Needs selenium (the `test` extra) and Chromium with its driver (Debian: apt-get install chromium
chromium-driver; or LSTM_CHROME / LSTM_CHROMEDRIVER naming the binaries); skips with the reason
where there is none. The pages and screenshots are left in reports/browser/ for a reviewer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.report import write_reports
from harness.results import STATUSES
from report_samples import BENCH_SAMPLE, sample_results

OUT = Path(__file__).resolve().parents[1] / "reports" / "browser"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def _find(env: str, names: tuple[str, ...]) -> str | None:
    return os.environ.get(env) or next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    chrome = _find("LSTM_CHROME", ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))
    driver_bin = _find("LSTM_CHROMEDRIVER", ("chromedriver",))
    if not chrome or not driver_bin:
        pytest.skip(f"no headless browser: chromium {chrome or 'not found'}, chromedriver {driver_bin or 'not found'} "
                    "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="lstm-report-chrome-")
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = chrome
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pages():
    with pytest.MonkeyPatch.context() as mp:
        results = sample_results(mp)
    shutil.rmtree(OUT, ignore_errors=True)
    agreement, performance = write_reports(OUT, results=results, bench=BENCH_SAMPLE, compare=BENCH_SAMPLE)
    return {"results": results, "agreement": agreement, "performance": performance}


def _open(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, f"console errors on {path.name}: {errors}"


def _screenshot(driver, name: str) -> Path:
    """The whole page, not just the window."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": max(width, 1280), "height": min(height, 12000), "deviceScaleFactor": 1, "mobile": False})
    path = OUT / name
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000
    return path


def _drawn(driver, svg, kind: str) -> int:
    """How many of the chart's bars or lines have a visible size on screen."""
    return driver.execute_script(
        "return [...arguments[0].querySelectorAll(`g[id*='-${arguments[1]}-']`)]"
        ".filter(g => { const r = g.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length",
        svg, kind)


def test_agreement_page_in_browser(browser, pages):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1000)
    _open(browser, pages["agreement"])
    cells = browser.find_elements(By.CSS_SELECTOR, "table.matrix td.cell")
    assert len(cells) == len(pages["results"])
    assert {c.get_attribute("data-status") for c in cells} == set(STATUSES)
    colours = {c.get_attribute("data-status"): [c.value_of_css_property(p) for p in ("background-color", "background-image")]
               for c in cells}
    assert len({str(v) for v in colours.values()}) == len(STATUSES), colours  # each status looks different on screen
    _screenshot(browser, "agreement.png")
    fail = browser.find_element(By.CSS_SELECTOR, 'td.cell[data-status="fail"] details.pop')
    body = fail.find_element(By.CSS_SELECTOR, ".popbody")
    assert not body.is_displayed()
    fail.find_element(By.TAG_NAME, "summary").click()
    assert fail.get_attribute("open") is not None and body.is_displayed()
    assert "python -m harness run --case" in body.find_element(By.CSS_SELECTOR, "code.repro").text
    _screenshot(browser, "agreement-detail.png")


def test_performance_page_in_browser(browser, pages):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1000)
    _open(browser, pages["performance"])
    size_charts = browser.find_elements(By.CSS_SELECTOR, 'figure[data-chart="size"] svg')
    tables = browser.find_elements(By.CSS_SELECTOR, 'table[class="perf"]')
    assert len(size_charts) == len(tables) > 0
    series = set()
    for chart, table in zip(size_charts, tables):
        rows = table.find_elements(By.CSS_SELECTOR, "tr")[1:]
        series |= {r.find_element(By.TAG_NAME, "td").text for r in rows}
        assert _drawn(browser, chart, "bar") == len(rows)  # one visible bar per backend of the size
    sweeps = browser.find_elements(By.CSS_SELECTOR, 'figure[data-chart="sweep"]')
    assert len(sweeps) == 4  # time against steps and against batch, for float32 and float64
    for sweep in sweeps:
        rows = sweep.find_elements(By.XPATH, "following-sibling::table//tr")[1:]
        assert _drawn(browser, sweep.find_element(By.TAG_NAME, "svg"), "line") == len(rows) > 0
    assert browser.find_elements(By.CSS_SELECTOR, "table.perf.first-call")
    assert "no regression against" in browser.find_element(By.CSS_SELECTOR, ".banner").text
    _screenshot(browser, "performance.png")
