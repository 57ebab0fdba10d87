"""The report pages in a real headless browser: they load with no console error, the verdict and the matrix
come before the tolerance table and the folded environment, the matrix's header row and case column stay in
view when the page scrolls, the filters hide and show cells, the charts are there and drawn, a failing cell
opens its detail, and screenshots are saved.

Needs selenium (the `test` extra) and Chromium with its driver (Debian: apt-get install chromium
chromium-driver; or LSTM_CHROME / LSTM_CHROMEDRIVER naming the binaries); skips with the reason
where there is none. The pages and screenshots are left in reports/browser/ for a reviewer.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness import extras
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
    webdriver = pytest.importorskip("selenium.webdriver", reason=extras.skip_reason("selenium", "the browser test drives Chromium"))
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
    machines = OUT / "machines"  # the same cells from a second machine, as `report --results gpu=...` merges them
    [two] = write_reports(machines, results=results + [dataclasses.replace(r, machine="gpu-box") for r in results])
    return {"results": results, "agreement": agreement, "performance": performance, "machines": two}


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


def _rect(driver, element) -> dict:
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)


def _shown(driver, css: str) -> set[bool]:
    """Whether each element the selector finds is on screen (display and visibility), in one round trip."""
    return set(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.checkVisibility({visibilityProperty: true}))",
        css))


def _drawn(driver, svg, kind: str) -> int:
    """How many of the chart's bars or lines have a visible size on screen."""
    return driver.execute_script(
        "return [...arguments[0].querySelectorAll(`g[id*='-${arguments[1]}-']`)]"
        ".filter(g => { const r = g.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length",
        svg, kind)


def test_agreement_page_in_browser(browser, pages):
    from selenium.webdriver.common.by import By

    from harness.compare import tolerance_table

    browser.set_window_size(1400, 1000)
    _open(browser, pages["agreement"])
    cells = browser.find_elements(By.CSS_SELECTOR, "table.matrix td.cell")
    assert len(cells) == len(pages["results"])
    colours = dict(browser.execute_script(  # one round trip for every cell
        "return [...arguments[0]].map(c => { const s = getComputedStyle(c); "
        "return [c.dataset.status, s.backgroundColor + ' ' + s.backgroundImage]; })", cells))
    assert set(colours) == set(STATUSES)
    assert len(set(colours.values())) == len(STATUSES), colours  # each status looks different on screen
    # In this order on screen: the verdict, the matrix, the tolerance table, the environment (folded).
    verdict, matrix, bounds, env = (browser.find_element(By.CSS_SELECTOR, css) for css in (
        ".banner.verdict", "table.matrix", "table.bounds", "#environment"))
    tops = [_rect(browser, e)["top"] for e in (verdict, matrix, bounds, env)]
    assert tops == sorted(tops) and _rect(browser, matrix)["bottom"] < tops[2], tops
    assert len(bounds.find_elements(By.TAG_NAME, "tr")) == 1 + len(tolerance_table())
    folded = env.find_element(By.CSS_SELECTOR, "details.env")
    assert not folded.find_element(By.TAG_NAME, "table").is_displayed()
    _screenshot(browser, "agreement.png")
    folded.find_element(By.TAG_NAME, "summary").click()
    assert folded.find_element(By.TAG_NAME, "table").is_displayed()
    fail = browser.find_element(By.CSS_SELECTOR, 'td.cell[data-status="fail"] details.pop')
    body = fail.find_element(By.CSS_SELECTOR, ".popbody")
    assert not body.is_displayed()
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", fail)
    fail.find_element(By.TAG_NAME, "summary").click()
    assert fail.get_attribute("open") is not None and body.is_displayed()
    # sloppy is registered from Python: its command registers it, then runs the cell (cases/test_plugins.py)
    assert '["run", "--case", "plain", "--backend", "sloppy"' in body.find_element(By.CSS_SELECTOR, "code.repro").text
    _screenshot(browser, "agreement-detail.png")


def test_matrix_header_and_case_column_stay_in_view(browser, pages):
    from selenium.webdriver.common.by import By

    browser.set_window_size(700, 420)  # narrower and shorter than the matrix
    _open(browser, pages["agreement"])
    table = browser.find_element(By.CSS_SELECTOR, "table.matrix")
    head = table.find_element(By.TAG_NAME, "thead")
    case = table.find_elements(By.CSS_SELECTOR, "tbody th.case")[-1]
    start = _rect(browser, table)
    assert abs(_rect(browser, head)["top"] - start["top"]) <= 1 and start["top"] > 0  # not stuck yet: where the table begins
    browser.execute_script("window.scrollTo(arguments[0], arguments[1])", 300, start["top"] + window_scroll(browser) + 60)
    now = _rect(browser, table)
    assert now["top"] < -50 and now["left"] < -100, now  # the table has scrolled up and left past the window's edge
    assert abs(_rect(browser, head)["top"]) < 1 and abs(_rect(browser, case)["left"]) < 1  # ... its header and cases not
    assert _rect(browser, case)["top"] >= _rect(browser, head)["bottom"] - 1  # the header does not hide the last row
    browser.save_screenshot(str(OUT / "agreement-scrolled.png"))


def window_scroll(browser) -> float:
    return browser.execute_script("return window.scrollY")


def test_filters_hide_and_show_cells(browser, pages):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1000)
    _open(browser, pages["agreement"])
    # Each status's box unticked then ticked again, in the page (one round trip): what is on screen each time.
    seen = browser.execute_script("""
        const shown = sel => [...new Set([...document.querySelectorAll(sel)].map(
            e => e.checkVisibility({visibilityProperty: true})))];
        return arguments[0].map((status, i) => {
            const box = document.getElementById('show-st-' + i), mine = `td.cell[data-status="${status}"]`;
            box.click();
            const off = [box.checked, shown(mine), shown(`td.cell:not([data-status="${status}"])`)];
            box.click();
            return [...off, shown(mine)];
        });""", list(STATUSES))
    assert seen == [[False, [False], [True], [True]]] * len(STATUSES), dict(zip(STATUSES, seen))
    backends = list(dict.fromkeys(r.backend for r in pages["results"]))
    sloppy = backends.index("sloppy")
    header = browser.find_element(By.CSS_SELECTOR, f"th.backend.bk-{sloppy}")
    browser.find_element(By.ID, f"show-bk-{sloppy}").click()
    assert _shown(browser, f"td.cell.bk-{sloppy}") == {False} and not header.is_displayed()
    assert _shown(browser, f"td.cell:not(.bk-{sloppy})") == {True}
    browser.find_element(By.ID, "show-st-0").click()  # a real click on a status too: neither pass nor sloppy now
    assert _shown(browser, 'td.cell[data-status="pass"]') == {False}
    browser.save_screenshot(str(OUT / "agreement-filtered.png"))  # the matrix is in the window: no full page
    browser.find_element(By.ID, f"show-bk-{sloppy}").click()
    assert _shown(browser, f"td.cell.bk-{sloppy}:not(.st-pass)") == {True}


def test_two_machines_in_one_page(browser, pages):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1000)
    _open(browser, pages["machines"])
    machines = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "tr.level-machine th")]
    assert set(machines) == {pages["results"][0].machine, "gpu-box"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.matrix td.cell")) == 2 * len(pages["results"])
    assert [d.get_attribute("data-machine") for d in browser.find_elements(By.CSS_SELECTOR, "details.env")] == [
        pages["results"][0].machine, "gpu-box"]
    browser.save_screenshot(str(OUT / "agreement-machines.png"))


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
    source = browser.find_element(By.CSS_SELECTOR, "table.sources")
    assert "2026-11-23 11:25 UTC" in source.text and "vm" in source.text  # when and where the benchmarks ran
    env = browser.find_element(By.ID, "environment")
    assert _rect(browser, env)["top"] > _rect(browser, tables[-1])["bottom"]  # the environment comes last, folded
    assert not env.find_element(By.TAG_NAME, "table").is_displayed()
    _screenshot(browser, "performance.png")
