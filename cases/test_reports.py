"""The report builders: agreement matrix, performance page, the commands and the pytest option.

(The pages in a real browser: test_report_browser.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.report import build_agreement, build_performance
from harness.report.performance import compare_runs, parse
from harness.results import FAIL, STATUSES, read_jsonl, write_jsonl
from report_samples import BENCH_SAMPLE, SCRIPT_REASON, SloppyBackend, bench_sample, sample_results, with_stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    with pytest.MonkeyPatch.context() as mp:
        return sample_results(mp)


@pytest.fixture(scope="module")
def agreement_html(results):
    return build_agreement(results)


@pytest.fixture(scope="module")
def perf_html():
    """The sample's page compared with itself (charts take a moment: made once)."""
    return build_performance(parse(bench_sample(), "sample"), parse(bench_sample(), "earlier"))


def first_benchmarks(n: int) -> dict:
    """The sample cut to its first n benchmarks (fewer charts, for the tests about one thing)."""
    data = bench_sample()
    data["benchmarks"] = data["benchmarks"][:n]
    return data


class Cells(HTMLParser):
    """The matrix cells: [class list, data-status, text, title] of each td.cell."""

    def __init__(self):
        super().__init__()
        self.cells, self._depth, self._text = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "cell" in (attrs.get("class") or "").split():
            self.cells.append([attrs["class"].split(), attrs.get("data-status"), "", attrs.get("title", "")])
            self._depth = 1
        elif self._depth and tag == "td":
            self._depth += 1

    def handle_endtag(self, tag):
        if self._depth and tag == "td":
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.cells[-1][2] += data


def cells_of(html: str):
    parser = Cells()
    parser.feed(html)
    return parser.cells


def test_every_status_has_its_own_cell_look(results, agreement_html):
    cells = cells_of(agreement_html)
    assert len(cells) == len(results)
    by_status = {}
    for classes, status, text, _ in cells:
        assert f"st-{status.replace(' ', '-')}" in classes, (classes, status)
        by_status.setdefault(status, text)
    assert set(by_status) == set(STATUSES), f"the sample covers every status: {sorted(by_status)}"
    # Each status class has its own CSS declarations (not one shared look) and its own symbol.
    style = re.search(r"<style>(.*?)</style>", agreement_html, re.S).group(1)
    looks = {s: re.search(rf"\.st-{s.replace(' ', '-')} \{{([^}}]*)\}}", style).group(1).strip() for s in STATUSES}
    assert len(set(looks.values())) == len(STATUSES), looks
    symbols = {s: text.split()[0] for s, text in by_status.items()}
    assert len(set(symbols.values())) == len(STATUSES), symbols


def test_cells_show_error_ratio_and_where(results, agreement_html):
    fail = next(r for r in results if r.status == FAIL and r.case == "bidirectional-2layer" and r.dtype == "float64")
    assert fail.worst_path == "h_n[layer=1, direction=backward]" and tuple(fail.worst_index) == SloppyBackend.OFF_INDEX
    text = next(t for c, s, t, title in cells_of(agreement_html) if title.startswith(
        "bidirectional-2layer on sloppy (cpu, float64"))
    assert f"{fail.worst_ratio:.2g} {fail.worst_abs:.2g} h_n[1,bwd] (1,2)" in " ".join(text.split())
    passing = next(t for c, s, t, _ in cells_of(agreement_html) if s == "pass")
    assert re.search(r"\d\.\d+e-\d+ \w+(\[[\w,]+\])? \([\d,]+\)", passing), passing


def test_a_failing_cell_opens_its_detail(results, agreement_html):
    fail = next(r for r in results if r.status == FAIL)
    start = agreement_html.index('data-status="fail"')
    cell = agreement_html[start:agreement_html.index("</details>", start)]
    assert '<details class="pop">' in cell
    for shown in (fail.reproduce, "seed", f"<code>{fail.seed}</code>", "hidden_size=7", "Mismatched elements"):
        assert shown in cell, shown
    assert fail.reproduce.startswith("python -m harness run --case ")


def test_reasons_are_numbered_notes_and_escaped(results, agreement_html):
    unsupported = next(r for r in results if r.status == "unsupported")
    assert f'<span class="reason">{unsupported.reason}</span>' in agreement_html
    assert re.search(r'data-status="unsupported">\s*<span class="sym">⊘</span>unsupported <sup><a href="#note-\d+">',
                     agreement_html)
    assert "<script>" not in agreement_html
    assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt; broke" in agreement_html
    assert SCRIPT_REASON in next(r.reason for r in results if r.status == "error")


def test_environment_comes_first(results, agreement_html):
    import torch

    env = agreement_html.index("<h2>Environment</h2>")
    assert env < agreement_html.index('<table class="matrix">')
    for shown in (f"<td>{torch.__version__}</td>", "<td>torch.backends.cudnn.allow_tf32</td>", "<td>precision</td>"):
        assert env < agreement_html.index(shown), shown


def test_one_result_per_cell(results):
    with pytest.raises(ValueError, match="two results for case 'plain'"):
        build_agreement(results + results[:1])


def test_performance_page_per_size_sweeps_and_first_calls(perf_html):
    run, html = parse(bench_sample(), "sample"), perf_html
    sizes = {b.size for b in run.benchmarks if not b.sweep}
    series = {b.series for b in run.benchmarks}
    assert len(sizes) == 2 and len(series) == 3
    assert html.count('<table class="perf">') == len(sizes)
    for s in sizes:
        assert f">{s.label}</h3>" in html
    for name in series:  # every backend side by side per size, and a line in each sweep of its dtype
        assert html.count(f"</span>{name}</td>") == len(sizes) + 2, name
    sweeps = {(b.sweep, b.info["device"], b.info["dtype"]) for b in run.benchmarks if b.sweep}
    assert len(sweeps) == 4  # steps and batch, for float32 (torch, keras) and float64 (numpy)
    assert html.count('data-chart="size"') == len(sizes)
    assert html.count('data-chart="sweep"') == len(sweeps) and html.count('<table class="perf sweep">') == len(sweeps)
    assert ">time against steps · cpu float32 · batch 16 · input 64 · hidden 64</h3>" in html
    assert html.count("<svg") == len(sizes) + len(sweeps)
    assert 'class="perf first-call"' in html and "GFLOP/s" in html and "%</td>" in html


def test_benchmarks_that_did_not_run_are_listed():
    data = first_benchmarks(3)
    data["lstm_harness"] = {"not_run": [
        {"backend": "jax-cudnn", "device": "cpu", "dtype": "float32", "status": "unsupported", "reason": "no <cpu> path"}] * 3}
    html = build_performance(parse(data))
    assert re.search(r"<td>jax-cudnn</td><td>cpu</td><td>float32</td>\s*<td><span class=\"st-unsupported\">unsupported"
                     r"</span></td><td class=\"num\">3</td><td>no &lt;cpu&gt; path</td>", html)


def test_chart_labels_are_escaped():
    data = first_benchmarks(3)
    data["benchmarks"][0]["extra_info"]["backend"] = "<script>x</script>$y$"
    html = build_performance(parse(data))
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;$y$" in html  # the $ is not taken as mathtext either


def _verdicts(now: dict, earlier: dict, threshold=0.10) -> dict[str, str]:
    changes = compare_runs(parse(now), parse(earlier), threshold)
    return {b.name: changes[b.key].verdict for b in parse(now).benchmarks if b.key in changes}


def test_regressions_are_marked():
    base = first_benchmarks(4)
    tight = dict(median=1.0, q1=0.99, q3=1.01, iqr=0.02)
    now = with_stats(with_stats(with_stats(with_stats(base, 0, **tight), 1, **tight), 2, **tight), 3, **tight)
    earlier = with_stats(now, 0, median=0.5, q1=0.49, q3=0.51)  # 2x slower now: a regression
    earlier = with_stats(earlier, 1, median=0.97, q1=0.96, q3=0.98)  # 3% slower: within the threshold
    earlier = with_stats(earlier, 2, median=2.0, q1=1.9, q3=2.1)  # 2x faster now: an improvement
    earlier = with_stats(earlier, 3, median=0.6, q1=0.3, q3=1.2)  # slower, but the earlier rounds were all over
    names = [b["name"] for b in now["benchmarks"][:4]]
    verdicts = _verdicts(now, earlier)
    assert [verdicts[n] for n in names] == ["regression", "unchanged", "improvement", "noisy"]
    assert _verdicts(now, earlier, threshold=0.02)[names[1]] == "regression"
    html = build_performance(parse(now, "now.json"), parse(earlier, "earlier.json"))
    assert "1 regression against earlier.json" in html
    assert len(re.findall(r'<tr class="regression"', html)) == 2  # the summary row and its per-size row
    assert len(re.findall(r'<tr class="improvement"', html)) == 1
    assert "2.00× regression" in html


def test_benchmark_json_without_extra_info_is_refused():
    data = bench_sample()
    del data["benchmarks"][0]["extra_info"]["backend"]
    with pytest.raises(ValueError, match="has no extra_info backend"):
        parse(data, "x.json")
    with pytest.raises(ValueError, match="expected pytest-benchmark JSON"):
        parse([], "y.json")


SRC_OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//|url\(\s*["']?(?:[a-z]+:)?//|@import""", re.I)


def test_pages_are_self_contained(agreement_html, perf_html):
    for html in (agreement_html, perf_html):
        assert not SRC_OUTSIDE.search(html), SRC_OUTSIDE.search(html)
        assert "<script" not in html.lower() and "<iframe" not in html.lower()
        assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
        assert "<!DOCTYPE svg" not in html
    assert SRC_OUTSIDE.search('<img src="https://x/y.png">') and SRC_OUTSIDE.search("<a href=//x>")  # the check bites


def test_report_command_rebuilds_both_pages(results, tmp_path, capsys):
    write_jsonl(results, tmp_path / "results.jsonl")
    earlier = tmp_path / "earlier.json"
    earlier.write_text(BENCH_SAMPLE.read_text())
    assert main(["report", "--results", str(tmp_path / "results.jsonl"), "--bench-json", str(BENCH_SAMPLE),
                 "--compare", str(earlier), "--out", str(tmp_path / "out")]) == 0
    assert "report written to" in capsys.readouterr().out
    assert 'data-status="fail"' in (tmp_path / "out" / "agreement.html").read_text()
    assert "no regression against" in (tmp_path / "out" / "performance.html").read_text()
    with pytest.raises(SystemExit, match="--results: .*missing.jsonl does not exist"):
        main(["report", "--results", str(tmp_path / "missing.jsonl")])


def test_run_command_writes_the_agreement_page(tmp_path, capsys):
    assert main(["run", "--case", "plain", "--backend", "torch", "--dtype", "float64", "--results",
                 str(tmp_path / "r.jsonl"), "--reports", str(tmp_path), "--bench-json", str(tmp_path / "none.json")]) == 0
    html = (tmp_path / "agreement.html").read_text()
    assert [c[1] for c in cells_of(html)] == [read_jsonl(tmp_path / "r.jsonl")[0].status]
    assert not (tmp_path / "performance.html").exists()  # no benchmark JSON, no performance page


def test_pytest_report_option(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "cases/test_agreement.py",
                           "-k", "plain", "--backend", "torch", "--dtype", "float64", "--report", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report written to {tmp_path / 'agreement.html'}" in proc.stdout
    assert len(cells_of((tmp_path / "agreement.html").read_text())) == 1
    assert len(read_jsonl(tmp_path / "results.jsonl")) == 1


@pytest.mark.parametrize("command, argv, message", [
    ("run", ["--backend", "nope"], "--backend: unknown backend 'nope'; known backends: numpy, torch"),
    ("run", ["--backend", "numpy"], "--backend: numpy is the reference"),
    ("run", ["--case", "nope"], "--case: unknown case 'nope'; known cases: plain"),
    ("run", ["--dtype", "float8"], r"--dtype: expected one of \('float32'.*got 'float8'"),
    ("run", ["--dtype", "int32"], r"--dtype: expected one of \('float32'.*got 'int32'"),
    ("run", ["--device", "tpu"], r"--device: device must be one of \('cpu', 'cuda'\), got 'tpu'"),
    ("run", ["--precision", "fast"], "--precision: precision mode must be one of .*got 'fast'"),
    ("measure", ["--dtype", ","], "--dtype: expected at least one value, got ','"),
    ("bench", ["--backend", "nope"], "--backend: unknown backend 'nope'"),
])
def test_a_bad_command_line_names_the_option_without_running(command, argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, *argv, *(["--results", "", "--reports", ""] if command == "run" else [])])
    assert exit_.value.code == 2  # bad usage, as argparse's own errors; 1 means something failed
    err = capsys.readouterr().err
    assert re.search(f"python -m harness {command}: error: {message}", err), err
    assert "Traceback" not in err


def test_report_names_a_file_that_is_not_results(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text("{bad\n")
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--results", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert re.search(r"error: --results: .*bad.jsonl:1: not a result record", capsys.readouterr().err)
