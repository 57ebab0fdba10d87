"""The agreement page's verdict: the banner's count, each cell's status symbol and look, the column totals, read
back from the HTML (harness.report.agreement), on hand-made Result records.
"""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from harness.report.agreement import STATUS_INFO, build_agreement, matrix
from harness.results import ERROR, FAIL, NOT_INSTALLED, PASS, SKIPPED, STATUSES, UNSUPPORTED, Result


def result(case: str, backend: str, status: str, dtype: str = "float32", **kw) -> Result:
    ran = status in (PASS, FAIL)
    fields = dict(worst_path="y", worst_index=[0, 1, 2], worst_abs=3e-7 if status == PASS else 2e-3,
                  worst_ratio=0.15 if status == PASS else 1000.0, rtol=2e-6, atol=2e-6) if ran else {}
    reason = {PASS: "all outputs close", FAIL: "1 of 1 outputs are not close\nReproduce: x",
              ERROR: "RuntimeError: boom\nTraceback"}.get(status, f"{backend} {status} because")
    return Result(case=case, backend=backend, device="cpu", dtype=dtype, precision="exact", status=status,
                  reason=reason, **{**fields, **kw})


class Page(HTMLParser):
    """Each td.cell as (data-status, classes, symbol); the banner's classes and text; the total chips per column."""

    def __init__(self, html: str):
        super().__init__()
        self.cells, self.banners, self.totals = [], [], []
        self._in = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "td" and "cell" in classes and "empty" not in classes:
            self.cells.append([a.get("data-status"), classes, ""])
        elif tag == "span" and "sym" in classes and self.cells:
            self._in = "sym"
        elif tag == "div" and "banner" in classes:
            self.banners.append([classes, ""])
            self._in = "banner"
        elif tag == "td" and "totals" in classes:
            self.totals.append([])
        elif tag == "span" and "chip" in classes and self.totals and a.get("title"):
            self.totals[-1].append([a["title"], classes, ""])
            self._in = "chip"

    def handle_endtag(self, tag):
        if tag in ("span", "div"):
            self._in = None

    def handle_data(self, data):
        if self._in == "sym" and not self.cells[-1][2]:
            self.cells[-1][2] = data
        elif self._in == "banner":
            self.banners[-1][1] += data
        elif self._in == "chip":
            self.totals[-1][-1][2] += data


ONE_OF_EACH = [result("plain", "torch", PASS), result("plain", "keras", FAIL), result("plain", "onnx", ERROR),
               result("plain", "jax", UNSUPPORTED), result("plain", "flax", NOT_INSTALLED),
               result("plain", "tf1", SKIPPED), result("peephole", "torch", FAIL), result("peephole", "keras", PASS)]


def test_the_status_symbols_are_distinct_and_cover_every_status():
    assert set(STATUS_INFO) == set(STATUSES)
    assert [STATUS_INFO[s][0] for s in STATUSES] == ["✓", "✗", "⊘", "∅", "↷", "⚠"]
    assert len({sym for sym, _ in STATUS_INFO.values()}) == len(STATUSES)


def test_every_cell_shows_its_own_status_symbol_and_look():
    page = Page(build_agreement(ONE_OF_EACH))
    assert Counter(status for status, _, _ in page.cells) == Counter(r.status for r in ONE_OF_EACH)
    for status, classes, symbol in page.cells:
        assert symbol == STATUS_INFO[status][0], (status, symbol)
        assert f"st-{status.replace(' ', '-')}" in classes
    fails = [sym for status, _, sym in page.cells if status == FAIL]
    assert fails == ["✗", "✗"]


def test_the_banner_counts_failures_and_errors():
    page = Page(build_agreement(ONE_OF_EACH))
    (classes, text), = page.banners
    assert "bad" in classes and "good" not in classes
    assert text.strip() == "3 of 8 cells failed or raised an error"


@pytest.mark.parametrize("status", [FAIL, ERROR])
def test_one_failure_or_error_among_passes_turns_the_banner(status):
    results = [result("plain", "torch", PASS), result("plain", "keras", status), result("plain", "jax", UNSUPPORTED)]
    (classes, text), = Page(build_agreement(results)).banners
    assert "bad" in classes and text.strip() == "1 of 3 cells failed or raised an error"


def test_the_banner_is_green_only_when_nothing_failed():
    results = [result("plain", "torch", PASS), result("plain", "jax", UNSUPPORTED), result("plain", "tf1", SKIPPED),
               result("plain", "flax", NOT_INSTALLED)]
    (classes, text), = Page(build_agreement(results)).banners
    assert "good" in classes and "bad" not in classes
    assert text.strip() == "every cell that ran agrees with the oracle (1 of 4 ran)"


def test_the_banner_warns_when_nothing_ran():
    results = [result("plain", "jax", UNSUPPORTED), result("plain", "flax", NOT_INSTALLED)]
    (classes, text), = Page(build_agreement(results)).banners
    assert "warn" in classes and "good" not in classes and "bad" not in classes
    assert text.strip().startswith("no cell ran")


def test_the_column_totals_count_each_status_with_its_symbol():
    results = [result("plain", "torch", PASS), result("peephole", "torch", FAIL), result("cell-clip", "torch", FAIL),
               result("plain", "torch", ERROR, dtype="float64")]
    m = matrix(results)
    assert [m.column_counts(col) for col in m.columns] == [[(PASS, "✓", 1), (FAIL, "✗", 2)], [(ERROR, "⚠", 1)]]
    page = Page(build_agreement(results))
    assert [[(title, text.strip()) for title, _, text in col] for col in page.totals] == [
        [(PASS, "✓ 1"), (FAIL, "✗ 2")], [(ERROR, "⚠ 1")]]


def test_cells_that_did_not_run_share_numbered_notes_and_failures_open_details():
    results = ONE_OF_EACH + [result("peephole", "jax", UNSUPPORTED), result("peephole", "onnx", UNSUPPORTED)]
    m = matrix(results)
    notes = {(s, reason): n for n, s, reason in m.notes}
    assert sorted(notes.values()) == [1, 2, 3, 4]  # jax twice with one reason, onnx's another
    assert notes[(UNSUPPORTED, "jax unsupported because")] == 1
    cells = {(case, col.backend): cell for (case, col), cell in m.cells.items()}
    assert cells[("peephole", "jax")].note == cells[("plain", "jax")].note == 1
    assert cells[("plain", "torch")].note is None and cells[("plain", "keras")].note is None
    assert [(c.result.case, c.result.backend, c.detail_id) for c in m.details] == [
        ("plain", "keras", "detail-1"), ("plain", "onnx", "detail-2"), ("peephole", "torch", "detail-3")]


def test_a_cell_given_twice_is_refused():
    with pytest.raises(ValueError, match="two results for case 'plain'"):
        matrix([result("plain", "torch", PASS), result("plain", "torch", FAIL)])


class Text(HTMLParser):
    """The <title>, the <h1>, the header's meta line, the status filters (label.chip: title, text) and the
    environment table's text."""

    def __init__(self, html: str):
        super().__init__()
        self.found = {"title": "", "h1": "", "meta": ""}
        self.filters, self.env = [], []
        self._in = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("title", "h1") or (tag == "div" and "meta" in classes):
            self._in = tag if tag != "div" else "meta"
        elif tag == "label" and "chip" in classes:
            self.filters.append([a.get("title"), ""])
            self._in = "filter"
        elif tag == "table" and "env" in classes:
            self._in = "env"

    def handle_endtag(self, tag):
        if tag in ("title", "h1", "label") or tag == "div" and self._in == "meta" or tag == "table":
            self._in = None

    def handle_data(self, data):
        if self._in in self.found:
            self.found[self._in] += data
        elif self._in == "filter":
            self.filters[-1][1] += data
        elif self._in == "env" and data.strip():
            self.env.append(data.strip())


LEGEND = {
    PASS: "agrees with the float64 oracle within the tolerance",
    FAIL: "differs from the oracle by more than the tolerance",
    UNSUPPORTED: "the framework cannot express this spec, dtype or device",
    NOT_INSTALLED: "the framework cannot be imported here",
    SKIPPED: "could run, but not here (e.g. no GPU present)",
    ERROR: "the harness or the framework raised: a bug to look at",
}


def test_the_status_filters_count_each_status_with_its_symbol_and_meaning():
    page = Text(build_agreement(ONE_OF_EACH))
    assert [(title, text.strip()) for title, text in page.filters] == [
        (LEGEND[PASS], "✓ pass 2"), (LEGEND[FAIL], "✗ fail 2"), (LEGEND[UNSUPPORTED], "⊘ unsupported 1"),
        (LEGEND[NOT_INSTALLED], "∅ not installed 1"), (LEGEND[SKIPPED], "↷ skipped 1"), (LEGEND[ERROR], "⚠ error 1")]


def test_the_page_is_titled_and_names_its_source_only_when_given():
    page = Text(build_agreement(ONE_OF_EACH))
    assert page.found["title"] == "LSTM agreement" and page.found["h1"] == "LSTM agreement"
    assert " from " not in page.found["meta"]
    assert "from reports/results.jsonl" in Text(build_agreement(ONE_OF_EACH, source="reports/results.jsonl")).found["meta"]


def test_the_environment_the_backends_recorded_is_shown():
    results = [result("plain", "torch", PASS, environment={"torch": "2.13.0", "python": "3.11"})]
    page = Text(build_agreement(results))
    assert "torch" in page.env and "2.13.0" in page.env and "python" in page.env


def test_a_cell_judged_by_another_bound_than_the_tables_is_flagged():
    stale = result("peephole", "torch", PASS, rtol=1e-3, atol=1e-3)
    html = build_agreement(ONE_OF_EACH[:1] + [stale])
    assert "1 cell recorded another bound than the table gives now" in html
    assert "recorded another bound" not in build_agreement(ONE_OF_EACH[:1])
