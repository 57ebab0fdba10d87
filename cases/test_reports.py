"""The report builders: agreement matrix, performance page, the commands and the pytest option.

(The pages in a real browser: test_report_browser.py.)
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import pytest

from harness import backends
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
    for shown in (str(markupsafe.escape(fail.reproduce)), "seed", f"<code>{fail.seed}</code>", "hidden_size=7",
                  "Mismatched elements"):
        assert shown in cell, shown
    # sloppy is registered from Python, so its command registers it again (cases/test_plugins.py runs one)
    assert fail.reproduce.startswith("python -c 'from harness import backends; backends.register(\"sloppy\"")
    assert '["run", "--case", "plain", "--backend", "sloppy"' in fail.reproduce


def test_reasons_are_numbered_notes_and_escaped(results, agreement_html):
    unsupported = next(r for r in results if r.status == "unsupported")
    assert f'<span class="reason">{unsupported.reason}</span>' in agreement_html
    assert re.search(r'data-status="unsupported">\s*<span class="sym">⊘</span><span class="word">unsupported</span> '
                     r'<sup><a href="#note-\d+">', agreement_html)
    assert "<script>" not in agreement_html
    assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt; broke" in agreement_html
    assert SCRIPT_REASON in next(r.reason for r in results if r.status == "error")


def test_verdict_then_matrix_then_tolerances_then_the_environment_folded(results, agreement_html):
    import torch

    order = [agreement_html.index(mark) for mark in ('class="banner bad verdict"', '<table class="matrix">',
                                                     '<h2 id="tolerances">', '<h2>Environment</h2>', '<h2 id="failures">')]
    assert order == sorted(order), order
    env = agreement_html[order[3]:order[4]]
    machines = re.findall(r'<details class="env" data-machine="([^"]*)">', env)
    assert machines == [results[0].machine]  # one machine, folded (no "open")
    for shown in (f"<div>{torch.__version__}", "<td>torch.backends.cudnn.allow_tf32</td>", "<td>precision</td>"):
        assert shown in env, shown
    keys = re.findall(r"<tr><td>([^<]*)</td>", env)
    assert len(keys) == len(set(keys)) > 5, [k for k in keys if keys.count(k) > 1]  # each key once per machine
    groups = re.findall(r'<tr class="group"><th colspan="2">([^<]*)</th>', env)
    assert groups[0] == "host" and "torch" in groups, groups


def test_environment_groups_by_machine_and_framework():
    from harness.report.page import env_by_machine

    machines = env_by_machine([("a", "torch", "torch", "2.13"), ("a", "keras", "torch", "2.13"), ("a", "torch", "kernel", "oneDNN"),
                               ("a", "sloppy", "kernel", "ATen"), ("a", "keras", "tf.tensor_float_32_execution", "False"),
                               ("a", "keras", "python", "3.11"), ("a", "torch", "python", "3.11"), ("a", "sloppy", "python", "3.11"),
                               ("b", "torch", "torch", "2.12")],
                              ("python",))
    assert [m.machine for m in machines] == ["a", "b"]
    a = {g.name: {row.key: row.values for row in g.rows} for g in machines[0].groups}
    assert list(a) == ["host", "torch", "tensorflow", "backend settings"]
    assert a["host"] == {"python": [("3.11", "")]}  # reported by every backend on the machine: said once
    assert a["torch"] == {"torch": [("2.13", "torch, keras")]}  # not every backend: who did is said
    assert a["tensorflow"] == {"tf.tensor_float_32_execution": [("False", "keras")]}
    assert a["backend settings"] == {"kernel": [("oneDNN", "torch"), ("ATen", "sloppy")]}  # one key, both values
    assert machines[0].summary == "python 3.11 · torch 2.13" and machines[1].summary == "torch 2.12"


def test_the_tolerance_table_is_read_from_compare(results, monkeypatch):
    from markupsafe import escape

    from harness import compare

    html = build_agreement(results)
    table = html[html.index('<table class="bounds">'):]
    table = table[:table.index("</table>")]
    bounds = compare.tolerance_table()
    assert table.count("<tr class=") == len(bounds) >= 9
    for b in bounds:
        assert str(escape(b.tolerance.evidence)) in table
    ran = sum(1 for r in results if r.rtol is not None)
    cells = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>\s*<td class="evidence">', table)]
    assert sum(cells) == ran > 0 and "changed" not in html  # every cell that ran is counted against its bound
    new = compare.Tolerance(rtol=3e-6, atol=3e-6, evidence="a bound measured <today>")
    monkeypatch.setitem(compare.TOLERANCES, ("float32", "exact"), new)
    html = build_agreement(results)
    assert "a bound measured &lt;today&gt;" in html and "3e-06" in html  # the page shows the table as it is now
    changed = sum(1 for r in results if r.dtype == "float32" and r.rtol is not None)
    assert f"{changed} cells recorded another bound than the table gives now" in html


def test_filters_by_status_and_backend_are_css_on_checkboxes(results, agreement_html):
    backends = list(dict.fromkeys(r.backend for r in results))
    for i, backend in enumerate(backends):
        assert f'<input type="checkbox" id="show-bk-{i}" checked>{backend}</label>' in agreement_html
        assert f"body:has(#show-bk-{i}:not(:checked)) table.matrix .bk-{i} {{ display: none; }}" in agreement_html
        cells = re.findall(rf'<td class="cell [^"]*\bbk-{i}\b', agreement_html)
        assert len(cells) == sum(1 for r in results if r.backend == backend)
    for i, status in enumerate(STATUSES):
        assert f'id="show-st-{i}" checked>' in agreement_html
        assert (f'body:has(#show-st-{i}:not(:checked)) table.matrix td.cell[data-status="{status}"] '
                f'{{ visibility: hidden; }}') in agreement_html


def test_two_machines_are_two_columns_and_a_duplicate_is_named(results):
    from harness.results import DuplicateResult

    with pytest.raises(DuplicateResult, match="two results for case 'plain' on torch .* from machine"):
        build_agreement(results + results[:1])
    other = [dataclasses.replace(r, machine="gpu-box") for r in results]
    html = build_agreement(results + other)
    assert len(cells_of(html)) == 2 * len(results)
    header = html[html.index("<thead>"):html.index("</thead>")]
    machine_row = re.search(r'<tr class="level-machine">(.*?)</tr>', header, re.S).group(1)
    backends = len({r.backend for r in results})
    assert re.findall(r">([^<]+)</th>", machine_row) == [results[0].machine, "gpu-box"] * backends
    assert "from 2 machines" in html


def test_performance_page_per_size_sweeps_and_first_calls(perf_html):
    run, html = parse(bench_sample(), "sample"), perf_html
    sizes = {b.size for b in run.benchmarks if not b.sweep}
    series = {b.series for b in run.benchmarks}
    assert len(sizes) == 2 and len(series) == 3
    assert html.count('<table class="perf">') == len(sizes)
    for s in sizes:
        assert f">{s.label}</h3>" in html
    for name in series:  # every backend side by side per size, a line in each sweep of its dtype, what it times
        assert html.count(f"</span>{name}</td>") == len(sizes) + 2 + 1, name
    sweeps = {(b.sweep, b.info["device"], b.info["dtype"]) for b in run.benchmarks if b.sweep}
    assert len(sweeps) == 4  # steps and batch, for float32 (torch, keras) and float64 (numpy)
    assert html.count('data-chart="size"') == len(sizes)
    assert html.count('data-chart="sweep"') == len(sweeps) and html.count('<table class="perf sweep">') == len(sweeps)
    assert ">time against steps · cpu float32 · batch 16 · input 64 · hidden 64</h3>" in html
    assert html.count("<svg") == len(sizes) + len(sweeps)
    assert 'class="perf first-call"' in html and "GFLOP/s" in html and "%</td>" in html


def test_each_variant_is_its_own_series_with_what_it_times_and_the_path_that_ran():
    data = first_benchmarks(2)  # keras-tensorflow's compiled default and its eager variant, on one size
    for bench, variant, default, kernel in zip(data["benchmarks"], ("tf.function", "eager"), (True, False),
                                               ("generic loop: a", "generic loop: <b>")):
        bench["extra_info"].update(backend="keras-tensorflow", variant=variant, default_variant=default,
                                   timed=f"{variant} call covers", kernel=kernel)
        bench["extra_info"].update({k: v for k, v in data["benchmarks"][0]["extra_info"].items() if k in SIZE})
    run = parse(data)
    assert [b.series for b in run.benchmarks] == ["keras-tensorflow[tf.function] cpu float32",
                                                   "keras-tensorflow[eager] cpu float32"]
    html = build_performance(run)
    rows = re.findall(r'<tr><td><span class="swatch"[^>]*></span>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>'
                      r'<td>(.*?)</td></tr>', html, re.S)
    assert [(series, re.sub(r"<[^>]+>", "", variant), timed, kernel) for series, variant, timed, kernel in rows] == [
        ("keras-tensorflow[eager] cpu float32", "eager (labelled variant)", "eager call covers", "generic loop: &lt;b&gt;"),
        ("keras-tensorflow[tf.function] cpu float32", "tf.function (default: what users run)", "tf.function call covers",
         "generic loop: a")]


SIZE = ("batch", "steps", "input_size", "hidden_size", "sweep")


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


def _without_machine(path: Path) -> Path:
    """The file as a harness that did not record machines wrote it."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        del record["machine"]
    old = path.with_name("old-" + path.name)
    old.write_text("".join(json.dumps(r) + "\n" for r in records))
    return old


def test_report_merges_results_from_several_machines(results, tmp_path, capsys):
    from harness.results import UNKNOWN_MACHINE, merge

    cpu = write_jsonl(results, tmp_path / "cpu.jsonl")
    old = _without_machine(write_jsonl(results, tmp_path / "a=b.jsonl"))  # a "=" in a folder path is no label
    assert {r.machine for r in merge([("", old)])} == {UNKNOWN_MACHINE}
    assert main(["report", "--results", str(cpu), "--results", f"gpu={old}", "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "agreement.html").read_text()
    assert len(cells_of(html)) == 2 * len(results)
    machine_row = re.search(r'<tr class="level-machine">(.*?)</tr>', html, re.S).group(1)
    assert {results[0].machine, "gpu"} == set(re.findall(r">([^<]+)</th>", machine_row))
    assert f"from <code>{cpu}, gpu={old}</code>" in html
    # The same cell from the same machine twice: both files and lines named, exit 2, no traceback.
    twin = write_jsonl(results, tmp_path / "twin.jsonl")
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--results", str(cpu), "--results", str(twin), "--out", str(tmp_path / "dup")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"two results for case 'plain' on torch (cpu, float32, precision exact) from machine '{results[0].machine}': " \
           f"{cpu}:1 and {twin}:1" in err
    assert not (tmp_path / "dup").exists()


def test_benchmarks_from_several_machines(tmp_path, capsys):
    from harness.report import load_runs
    from harness.results import DuplicateResult

    data = first_benchmarks(2)
    data["machine_info"]["lstm_harness"] = {"machine": "ci-cpu"}  # what bench --machine records
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(data))
    b.write_text(json.dumps({**data, "datetime": "2026-12-01T08:05:00+00:00"}))
    run = load_runs([("", a), ("h200", b)])
    assert run.machines == ["ci-cpu", "h200"]
    assert {s.rsplit(" @", 1)[1] for s in {bench.series for bench in run.benchmarks}} == {"ci-cpu", "h200"}
    html = build_performance(run)
    sources = re.findall(r"<tr><td><b>([^<]+)</b></td><td><code>([^<]+)</code></td><td>([^<]+)</td>", html)
    assert sources == [("ci-cpu", str(a), "2026-11-23 11:25 UTC"), ("h200", str(b), "2026-12-01 08:05 UTC")]
    assert html.index('class="banner verdict neutral"') < html.index("<h2>Per size</h2>") < html.index("<h2>Environment</h2>")
    assert re.findall(r'<details class="env" data-machine="([^"]+)">', html) == ["ci-cpu", "h200"]
    with pytest.raises(DuplicateResult, match=f"the same benchmark twice from machine 'ci-cpu': .* in {a} and .* in {b}"):
        load_runs([("", a), ("", b)])
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--bench-json", str(a), "--bench-json", str(b), "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "--bench-json: the same benchmark twice" in capsys.readouterr().err


def test_gpu_names_its_machine_in_every_result_and_benchmark(monkeypatch, tmp_path):
    from harness.cli import gpu

    calls, benches = [], []
    monkeypatch.setattr(gpu, "pytest", lambda args, env=None, log=None: (calls.append(args), ([], 5))[1])
    monkeypatch.setattr(gpu, "cmd_bench", lambda args: benches.append(args.machine) or 0)
    assert main(["gpu", "--backend", "torch", "--machine", "h200", "--reports", str(tmp_path)]) == 0
    assert len(calls) == 2 and all(args[args.index("--machine") + 1] == "h200" for args in calls)
    assert benches == ["h200"]


def test_run_command_writes_the_agreement_page(tmp_path, capsys):
    assert main(["run", "--case", "plain", "--backend", "torch", "--dtype", "float64", "--results",
                 str(tmp_path / "r.jsonl"), "--reports", str(tmp_path), "--bench-json", str(tmp_path / "none.json"),
                 "--machine", "box-1"]) == 0
    html = (tmp_path / "agreement.html").read_text()
    [record] = read_jsonl(tmp_path / "r.jsonl")
    assert [c[1] for c in cells_of(html)] == [record.status] and record.machine == "box-1"
    assert not (tmp_path / "performance.html").exists()  # no benchmark JSON, no performance page


def test_pytest_report_option_with_xdist_workers(tmp_path):
    """`pytest -n 2 --report DIR`, as the README runs the tests: each worker's records reach the controller, which
    writes results.jsonl and the page (two backends: each worker runs one, as one backend's cases stay together;
    the two ONNX ones, whose imports are light: with torch the child took 7.6 s of wall, with these 4.0 s)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "cases/test_agreement.py", "-k", "plain", "--backend", "onnx,onnx-reference",
                           "--dtype", "float32", "--report", str(tmp_path), "--machine", "ci-cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report written to {tmp_path / 'agreement.html'}" in proc.stdout
    assert len(cells_of((tmp_path / "agreement.html").read_text())) == 2
    records = read_jsonl(tmp_path / "results.jsonl")
    expected = [(name, "ci-cpu", "not installed" if backends.get(name).installed() else "pass")
                for name in ("onnx", "onnx-reference")]  # a torch-only install has no onnx: a record all the same
    assert sorted((r.backend, r.machine, r.status) for r in records) == expected
    assert "bringing up nodes" in proc.stdout  # it did run in pytest-xdist workers


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
    ("report", ["--results", "nope.jsonl"], "--results: nope.jsonl does not exist"),
    ("report", ["--results", "cpu="], "--results: expected LABEL=PATH or PATH, got 'cpu='"),
    ("report", ["--bench-json", "gpu=nope.json"], "--bench-json: nope.json does not exist"),
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
