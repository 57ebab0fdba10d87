"""The command line a newcomer meets: an install that serves the main job, commands that never break each other,
progress and no framework chatter, a matrix that fits the terminal, a comparison that can fail CI, one error
style and documented exit statuses per subcommand, a listing, and an install of one extra alone.

Most tests call `main()` in this process, with the benchmarks' pytest processes replaced by a fake that writes
what a real one would (the real one runs in cases/test_gpu_bench.py); one test runs `python -m harness run` in
a fresh process, the only way to see what the frameworks print when they are first imported.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import backends, catalogue, extras, machine_load, quiet
from harness.__main__ import build_parser, main
from harness.cli import matrix
from harness.results import PASS, Result
from plugin_site import install_example
from report_samples import BENCH_SAMPLE, bench_sample, with_stats

ROOT = Path(__file__).resolve().parents[1]


def exits(argv: list[str]) -> int:
    """main(argv)'s exit status, whether it returns it or raises SystemExit (argparse, usage errors)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def torch_installed():
    reason = backends.get("torch").installed()
    if reason:
        pytest.skip(f"not installed: {reason}")


# 1. The README's main-job install brings what run --bench, bench and report need ---------------------------
def _requirements(extras_: list[str], project: dict) -> set[str]:
    """The distributions `pip install -e .[extras]` brings directly (self-references followed)."""
    out = {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0] for r in project["dependencies"]}
    for extra in extras_:
        for req in project["optional-dependencies"][extra]:
            if req.startswith("lstm-harness["):
                out |= _requirements(req[len("lstm-harness["):req.index("]")].split(","), project)
            else:
                out.add(re.split(r"[<>=;\[ ]", req, maxsplit=1)[0])
    return out


def test_the_main_job_install_brings_the_benchmarks_and_the_progress():
    readme = (ROOT / "README.md").read_text()
    [main_job] = [line for line in readme.splitlines() if "pip install" in line and "python -m harness run" in line]
    chosen = re.search(r'-e "\.\[([^\]]*)\]"', main_job).group(1).split(",")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"pytest", "pytest-benchmark", "rich"} <= _requirements(chosen, project), chosen


def test_a_missing_framework_names_the_extra_that_brings_it(monkeypatch):
    class Absent(backends.Backend):
        name, framework = "absent", "lstm_fake_framework.layers"

    monkeypatch.setitem(extras.EXTRAS, "lstm_fake_framework", ("tf",))  # a framework the tf extra would bring
    reason = Absent().installed()
    assert reason.startswith("lstm_fake_framework.layers is not installed (ModuleNotFoundError")
    assert reason.endswith("; install the tf extra: pip install -c constraints.txt -e '.[tf]'")
    monkeypatch.setattr(extras, "_present", lambda top: True)  # there but broken: a repair, not another install
    assert "install the" not in Absent().installed()
    Absent.install_hint = "pip install the-plugin"  # a plugin says what it needs itself
    assert Absent().installed().endswith("; pip install the-plugin")


def test_convert_names_the_extra_a_missing_framework_comes_with(tmp_path, monkeypatch, capsys):
    from harness import CanonicalLSTM, LSTMSpec

    src = CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3)).save(tmp_path / "lstm.npz")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as in an install without the onnx extra
    assert exits(["convert", "--from", "numpy", str(src), "--to", "onnx", "-o", str(tmp_path / "out.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m harness convert: not installed: ")
    assert "install the onnx extra: pip install -c constraints.txt -e '.[onnx]'" in err


# 2. No command breaks another ----------------------------------------------------------------------------
class FakeBenchProcess:
    """Stands in for harness.cli's pytest(): writes what the benchmark process for --backend would have written
    (that backend's benchmarks from the sample JSON, dated `when`), or nothing; returns `returncode`."""

    def __init__(self, returncode=0, write=True, when="2030-01-02T03:04:05+00:00", count=None):
        self.returncode, self.write, self.when, self.count, self.calls = returncode, write, when, count, []

    def __call__(self, args, env=None, log=None):
        self.calls.append(args)
        backend = args[args.index("--backend") + 1]
        out = [a.split("=", 1)[1] for a in args if a.startswith("--benchmark-json=")]
        if self.write and out:  # a benchmark process (gpu's agreement processes write results instead)
            data = bench_sample()
            data.update(datetime=self.when, benchmarks=[b for b in data["benchmarks"]
                                                        if b["extra_info"]["backend"] == backend][:self.count])
            for b in data["benchmarks"]:  # measured in the process's precision mode
                b["extra_info"]["precision_flags"]["precision"] = args[args.index("--precision") + 1]
            Path(out[0]).write_text(json.dumps(data))
        if log is not None:
            Path(log).write_text("fake benchmark process\n")
        return ["pytest", *args], self.returncode


def machine_state(foreign_cpu_s: float):
    """Stands in for machine_load.sample (which sleeps a second to watch the machine): a 1 s sample on 2 cores
    in which other processes used `foreign_cpu_s` of CPU."""
    def sample(seconds: float = 1.0) -> machine_load.ForeignCPU:
        return machine_load.ForeignCPU(cpus={0, 1}, wall_s=seconds, own_cpu_s=0.0, foreign_cpu_s=foreign_cpu_s * seconds)
    return sample


@pytest.fixture
def fake_bench(monkeypatch):
    monkeypatch.setattr(machine_load, "sample", machine_state(0.0))  # a quiet machine, without the second's wait

    def install(**kw) -> FakeBenchProcess:
        fake = FakeBenchProcess(**kw)
        monkeypatch.setattr("harness.cli.bench.pytest", fake)
        monkeypatch.setattr("harness.cli.gpu.pytest", fake)
        return fake
    return install


@pytest.mark.parametrize(("foreign", "warned"), [(0.1, False), (1.5, True)])
def test_bench_warns_before_it_starts_on_a_busy_machine(fake_bench, earlier_json, capsys, monkeypatch,
                                                        foreign, warned):
    monkeypatch.setattr(machine_load, "sample", machine_state(foreign))
    fake = fake_bench()
    assert exits(["bench", "--backend", "torch", "--out", str(earlier_json)]) == 0 and fake.calls
    err = capsys.readouterr().err
    assert ("warning: the machine is busy: other processes kept 1.50 of this process's 2 cores busy" in err) is warned


@pytest.fixture
def earlier_json(tmp_path) -> Path:
    out = tmp_path / "bench.json"
    out.write_text(BENCH_SAMPLE.read_text())  # torch, keras and numpy benchmarks of 2026-11-23
    return out


@pytest.mark.parametrize("kw, why", [({"returncode": 1}, "1 benchmark process(es) failed"),
                                     ({"write": False}, "no benchmark ran")])
def test_a_failed_or_empty_bench_run_writes_nothing(fake_bench, earlier_json, capsys, kw, why):
    fake_bench(**kw)
    before = earlier_json.read_bytes()
    assert exits(["bench", "--backend", "torch", "--out", str(earlier_json)]) == 1
    assert earlier_json.read_bytes() == before
    assert f"{why}: nothing written, {earlier_json} is left as it was" in capsys.readouterr().out


def test_bench_merges_by_backend_and_precision_instead_of_replacing(fake_bench, earlier_json, capsys):
    fake_bench(when="2030-01-02T03:04:05+00:00")
    assert exits(["bench", "--backend", "torch", "--out", str(earlier_json)]) == 0
    merged = json.loads(earlier_json.read_text())
    dates = {(b["extra_info"]["backend"], b["extra_info"]["run_datetime"]) for b in merged["benchmarks"]}
    assert dates == {("torch", "2030-01-02T03:04:05+00:00"), ("keras", "2026-11-23T11:25:38.556259+00:00"),
                     ("numpy", "2026-11-23T11:25:38.556259+00:00")}  # torch's replaced, the others kept
    assert len(merged["benchmarks"]) == len(bench_sample()["benchmarks"])
    assert "10 benchmarks measured, 20 earlier ones kept" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], r"--device: device must be one of \('cpu', 'cuda'\), got 'tpu'"),
    (["--precision", "exact,fast"], "--precision: precision mode must be one of .*got 'fast'"),
    (["--backend", "nope"], "--backend: unknown backend 'nope'"),
    (["--seconds", "0"], "argument --seconds: expected a number > 0, got '0'"),
    (["--threads", "-2"], "argument --threads: expected a whole number > 0, got '-2'"),
])
def test_bench_checks_every_option_before_any_work(fake_bench, earlier_json, capsys, argv, message):
    fake = fake_bench()
    before = earlier_json.read_bytes()
    assert exits(["bench", "--backend", "torch", *argv, "--out", str(earlier_json)]) == 2
    assert re.search(f"^python -m harness bench: error: {message}", capsys.readouterr().err, re.M)
    assert fake.calls == [] and earlier_json.read_bytes() == before


def test_bench_refuses_to_merge_into_a_file_that_is_not_benchmark_json(fake_bench, tmp_path, capsys):
    fake = fake_bench()
    out = tmp_path / "notes.json"
    out.write_text("my notes")
    assert exits(["bench", "--backend", "torch", "--out", str(out)]) == 2
    assert "--out: " in capsys.readouterr().err and out.read_text() == "my notes" and fake.calls == []


@pytest.mark.parametrize("stale, why", [("", "it is not benchmark JSON"), ('{"benchmarks": []}', "it holds no benchmarks"),
                                        ("{not json", "it is not benchmark JSON")])
def test_a_stale_bench_json_is_skipped_saying_why(tmp_path, stale, why):
    from harness.cli.report import load_bench

    (tmp_path / "bench.json").write_text(stale)
    run, reason = load_bench(tmp_path / "bench.json")
    assert run is None and reason.startswith(why)


def test_run_and_report_skip_a_stale_bench_json_and_date_a_good_one(tmp_path, monkeypatch, capsys):
    torch_installed()
    monkeypatch.chdir(tmp_path)
    Path("reports").mkdir()
    Path("reports/bench.json").write_text("")  # what a failed bench left before
    assert main(["run", "--case", "plain", "--backend", "torch", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "skipped reports/bench.json (the performance page): it is not benchmark JSON" in out
    assert Path("reports/agreement.html").exists() and not Path("reports/performance.html").exists()
    Path("reports/bench.json").write_text('{"benchmarks": []}')
    assert main(["report"]) == 0
    assert "skipped reports/bench.json (the performance page): it holds no benchmarks" in capsys.readouterr().out
    Path("reports/bench.json").write_text(json.dumps(small_sample()))  # a good one: used, with its date
    assert main(["report"]) == 0
    assert "benchmarks from reports/bench.json: 2, measured 2026-11-23 11:25 UTC" in capsys.readouterr().out
    assert Path("reports/performance.html").exists()


def small_sample(n: int = 2) -> dict:
    """The sample's first benchmarks (torch, keras): few charts, for tests about the command line."""
    data = bench_sample()
    data["benchmarks"] = data["benchmarks"][:n]
    return data


# 3. Progress, and no framework chatter --------------------------------------------------------------------
def test_progress_in_a_terminal_shows_counts_the_backend_and_the_time(monkeypatch, capsys):
    torch_installed()
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stdout as a terminal
    assert main(["run", "--case", "plain,2layer", "--backend", "torch", "--dtype", "float64", "--results", "",
                 "--reports", ""]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out  # drawn (and erased) with control sequences
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert re.search(r"run .*1/2 0:00:\d\d torch: 2layer float64 cpu", frames), frames[-2000:]


def test_no_progress_where_stdout_is_no_terminal(monkeypatch, capsys):
    torch_installed()
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", "--case", "plain", "--backend", "torch", "--dtype", "float64", "--results", "",
                 "--reports", ""]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "0:00:" not in out


def test_the_stderr_filter_drops_start_up_chatter_and_keeps_the_rest(capfd):
    chatter = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
               "I0000 00:00:1796010271.201463   11078 port.cc:153] oneDNN custom operations are on. You may see\n"
               "W0000 00:00:1796010271.2   11078 cuda_executor.cc:1] could not open file to read NUMA node\n"
               "I0000 00:00:1796010271.3   11078 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n"
               "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags.\n"
               "E0000 00:00:1796036301.002497    5369 util.cc:131] oneDNN supports DT_BOOL only on platforms with "
               "AVX-512. Falling back to the default Eigen-based implementation if present.\n")
    kept = "E0000 00:00:1.5   7 real_problem.cc:9] a real error\nTraceback: something else\n"
    with quiet.filtered_stderr():
        os.write(2, (chatter + kept).encode())
    assert capfd.readouterr().err == kept


def test_a_crash_inside_the_stderr_filter_still_says_so():
    """The capture is written back only if the process lives: a segfault inside the block is reported by Python's
    fault handler on the real stderr, not lost with the capture."""
    code = ("import faulthandler, os\nfrom harness import quiet\nwith quiet.filtered_stderr():\n"
            "    os.write(2, b'captured\\n')\n    faulthandler._sigsegv()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Fatal Python error: Segmentation fault" in proc.stderr, proc.stderr
    assert 'File "<string>", line 5' in proc.stderr and "captured" not in proc.stderr


# 4. A matrix that fits the terminal ----------------------------------------------------------------------
@pytest.mark.parametrize("ratio, text", [(0.0043, "4.3e-3"), (0.004, "4e-3"), (0.59, "0.59"), (1.0, "1"),
                                         (12.3, "12"), (123.0, "1.2e2"), (2.5e-7, "2.5e-7"), (0.0, "0")])
def test_ratios_show_small_values(ratio, text):
    assert matrix.ratio_text(ratio) == text


def test_the_matrix_wraps_its_backend_columns_into_the_width():
    cases, names = catalogue.CASES, [f"backend-{i:02d}" for i in range(14)]
    results = [Result(case=c.name, backend=n, device="cpu", dtype=d, precision="exact", status=PASS,
                      worst_ratio=0.0043) for c in cases for n in names for d in ("float32", "float64")]
    lines = matrix.matrix_lines(results, cases, names, ["cpu"], ["float32", "float64"], "exact", columns=100)
    assert max(map(len, lines)) <= 100
    headers = [line.split()[1:] for line in lines if line.startswith("case ")]
    assert len(headers) > 2 and [n for h in headers[:len(headers) // 2] for n in h] == names  # each once per dtype
    assert sum(line.startswith("peephole-projection-clips-bidirectional-2layer ") for line in lines) == len(headers)
    assert "ok 4.3e-3" in lines[3] and "0.00" not in "\n".join(lines)


def test_messages_under_the_matrix_wrap_and_a_reproduce_command_still_pastes():
    command = "python -m harness run --case peephole-projection-clips-bidirectional-2layer --backend tf1 " \
              "--dtype float32 --device cpu --precision exact"
    r = Result(case="plain", backend="tf1", device="cpu", dtype="float32", precision="exact", status="fail",
               reason="1 of 5 outputs are not close " + "and the reason goes on " * 8 + f"\nReproduce: {command}")
    lines = matrix.summary_lines([r], columns=60)
    assert max(map(len, lines)) <= 60
    start = lines.index("Reproduce:")
    pasted = " ".join(line.strip().removesuffix("\\").strip() for line in lines[start + 1:])
    assert pasted == command and all(line.endswith(" \\") for line in lines[start + 1:-1])


# 5. A comparison that can fail CI (pytest-benchmark's --benchmark-compare-fail median:10%) ----------------
@pytest.fixture
def compared(tmp_path):
    tight = dict(median=1.0, q1=0.99, q3=1.01, iqr=0.02)
    now = with_stats(with_stats(small_sample(), 0, **tight), 1, **tight)
    regressed = with_stats(now, 0, median=0.5, q1=0.49, q3=0.51)  # twice as slow now, ranges apart
    noisy = with_stats(now, 1, median=0.6, q1=0.3, q3=1.2)  # slower, but the earlier ranges were all over
    paths = {}
    for name, data in (("now", now), ("regressed", with_stats(regressed, 1, median=0.6, q1=0.3, q3=1.2)),
                       ("noisy", noisy)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    return paths


def test_report_compare_prints_the_counted_regressions_and_fails_on_request(compared, tmp_path, capsys):
    argv = ["report", "--bench-json", str(compared["now"]), "--out", str(tmp_path / "out")]
    assert exits(argv + ["--compare", str(compared["regressed"]), "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "1 regression(s) over 10%, 1 noisy (not counted)" in out
    assert re.search(r"REGRESSION: torch cpu float32 .*: median 500 ms -> 1e\+03 ms \(\+100%\)", out), out
    assert "noisy, not counted: keras cpu float32" in out
    assert exits(argv + ["--compare", str(compared["noisy"]), "--fail-on-regression"]) == 0  # noisy: not counted
    assert exits(argv + ["--compare", str(compared["regressed"])]) == 0  # printed, not asked to fail
    assert "REGRESSION: torch cpu float32" in capsys.readouterr().out
    capsys.readouterr()
    assert exits(argv + ["--fail-on-regression"]) == 2
    assert "error: --fail-on-regression: needs --compare" in capsys.readouterr().err


# 6. One error style, documented exit statuses, help for every option, a listing ---------------------------
def test_every_option_of_every_command_has_help():
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    missing = [f"{cmd} {a.option_strings or a.dest}" for cmd, p in sub.choices.items() for a in p._actions
               if a.dest != "help" and not a.help]
    assert missing == []
    assert set(sub.choices) == {"run", "report", "measure", "bench", "gpu", "convert", "diagnose", "list"}
    for command, p in sub.choices.items():  # --help renders (argparse %-formats every help text)
        assert "--help" in p.format_help(), command
    assert "pytest-benchmark's median:10%)" in " ".join(sub.choices["report"].format_help().split())


@pytest.mark.parametrize("argv, message", [
    (["run", "--precision", "exact,tf32"], "--precision: expected one mode, got 'exact,tf32'"),
    (["measure", "--seeds", "-1"], "argument --seeds: expected a whole number > 0, got '-1'"),
    (["measure", "--seeds", "0"], "argument --seeds: expected a whole number > 0, got '0'"),
    (["report", "--threshold", "-0.1"], "argument --threshold: expected a number >= 0, got '-0.1'"),
    (["report", "--results", "missing.jsonl"], "--results: missing.jsonl does not exist"),
    (["gpu", "--backend", "nope"], "--backend: unknown backend 'nope'"),
    (["convert", "--from", "torch", "missing.safetensors", "--to", "keras", "-o", "x.npz"],
     "SRC: no file missing.safetensors"),
    (["list", "everything"], "argument what: invalid choice: 'everything'"),
])
def test_a_bad_command_line_is_the_programs_error_naming_the_option(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert exits(argv) == 2
    err = capsys.readouterr().err
    assert re.search(f"^python -m harness {argv[0]}: error: {message}", err, re.M), err
    assert "Traceback" not in err and not list(tmp_path.iterdir())  # nothing ran, nothing written


def test_convert_speaks_of_select_as_the_command_line_spells_it(tmp_path, capsys):
    from safetensors.numpy import save_file

    from harness import CanonicalLSTM, LSTMSpec, convert

    spec = LSTMSpec(input_size=2, hidden_size=3)
    state = convert(CanonicalLSTM.random(spec), "numpy", "torch", spec)
    save_file({f"{p}.{k}": v for p in ("encoder", "decoder") for k, v in state.items()}, tmp_path / "two.safetensors")
    assert exits(["convert", "--from", "torch", str(tmp_path / "two.safetensors"), "--spec",
                  '{"input_size": 2, "hidden_size": 3}', "--to", "numpy", "-o", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m harness convert: error: ") and "--select" in err and "select=" not in err


def test_exit_statuses_of_run(tmp_path, monkeypatch, capsys):
    torch_installed()
    from report_samples import SloppyBackend

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(backends._REGISTRY, "sloppy", "report_samples:SloppyBackend")
    monkeypatch.setitem(backends._INSTANCES, "sloppy", SloppyBackend())
    argv = ["run", "--case", "plain", "--dtype", "float64", "--results", "", "--reports", ""]
    assert exits(argv + ["--backend", "torch"]) == 0
    assert exits(argv + ["--backend", "sloppy"]) == 1  # a cell failed
    assert exits(argv + ["--backend", "torch", "--dtype", "int8"]) == 2
    assert exits(argv + ["--backend", "torch", "--compare", "missing.json"]) == 2  # checked before the matrix runs
    assert "FAIL plain sloppy" in capsys.readouterr().out


def test_exit_statuses_of_measure(monkeypatch, capsys):
    torch_installed()
    from report_samples import BrokenBackend

    monkeypatch.setitem(backends._REGISTRY, "broken", "report_samples:BrokenBackend")
    monkeypatch.setitem(backends._INSTANCES, "broken", BrokenBackend())
    argv = ["measure", "--case", "plain", "--dtype", "float64", "--seeds", "1", "--no-sweep"]
    assert exits(argv + ["--backend", "torch"]) == 0
    assert exits(argv + ["--backend", "broken"]) == 1  # an error: a bug to look at
    assert exits(argv + ["--backend", "torch", "--seeds", "-1"]) == 2
    assert "error: plain broken cpu float64 seed 0" in capsys.readouterr().out


def test_exit_statuses_of_bench_and_gpu(fake_bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    fake_bench()
    assert exits(["bench", "--backend", "torch", "--out", str(out)]) == 0 and out.exists()
    fake_bench(returncode=1)
    assert exits(["bench", "--backend", "torch", "--out", str(out)]) == 1
    assert exits(["bench", "--backend", "torch", "--device", "tpu", "--out", str(out)]) == 2
    fake_bench(returncode=5, count=2)  # the agreement processes select nothing here; the benchmarks write JSON
    assert exits(["gpu", "--backend", "torch", "--reports", str(tmp_path / "gpu")]) == 0
    assert (tmp_path / "gpu" / "performance.html").exists()
    fake_bench(returncode=1)
    assert exits(["gpu", "--backend", "torch", "--reports", str(tmp_path / "gpu")]) == 1
    assert exits(["gpu", "--backend", "torch", "--threads", "0"]) == 2


def test_list_cases_and_backends(monkeypatch, capsys):
    assert exits(["list", "cases"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as one line (wrapped to the terminal)
    assert ('bidirectional-2layer: {"input_size": 5, "hidden_size": 7, "num_layers": 2, "bidirectional": true}; '
            "batch 3, 6 steps") in out

    class Absent(backends.Backend):
        name, framework, description = "absent-jax", "jax.no_such_module_for_this_test", "nothing"

    monkeypatch.setitem(backends._REGISTRY, "absent-jax", "cases:Absent")
    monkeypatch.setitem(backends._INSTANCES, "absent-jax", Absent())
    monkeypatch.setattr(extras, "_present", lambda top: top != "jax")
    assert exits(["list", "backends"]) == 0
    out = capsys.readouterr().out
    absent = out[out.index("\nabsent-jax\n"):]
    assert "not installed: jax.no_such_module_for_this_test is not installed" in absent
    assert "install the jax extra: pip install -c constraints.txt -e '.[jax]'" in " ".join(absent.split())
    if not backends.get("torch").installed():
        torch = out[out.index("\ntorch\n"):out.index("\nkeras\n")]
        assert "installed (runs on torch)" in torch and "from: built-in" in torch
        assert "holds: two biases, projection" in torch and "refuses: peepholes, cell_clip, proj_clip" in torch


# 7 and 3 and 4 together: `python -m harness run` as a user runs it -----------------------------------------
@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """A default run in a fresh process, narrowed to two cases but importing every framework, beside the example
    plugin (installed on PYTHONPATH), with COLUMNS=100 and stdout a pipe; the frameworks' switches unset."""
    tmp = tmp_path_factory.mktemp("default_run")
    site = install_example(tmp / "site")
    env = {k: v for k, v in os.environ.items() if k not in quiet.ENVIRONMENT}
    env.update(COLUMNS="100", PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    chosen = [n for n in ("torch", "keras", "jax", "onnx") if not backends.get(n).installed()]
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--case", "plain", "--dtype", "float32",
                           "--backend", ",".join(chosen + ["numpy-concat"]), "--reports", ""],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    return proc, chosen


def test_a_default_run_prints_no_framework_chatter(default_run):
    proc, chosen = default_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chatter = [line for line in proc.stderr.splitlines()
               if re.search(r"absl|oneDNN|tensorflow|TF_CPP|XLA|cuda|^[IWE]\d{4} ", line, re.I)]
    assert chatter == [], proc.stderr


def test_a_default_run_fits_100_columns_without_progress_in_a_pipe_and_sees_the_plugin(default_run):
    proc, chosen = default_run
    long = [line for line in proc.stdout.splitlines() if len(line) > 100]
    assert long == [] and "\x1b" not in proc.stdout
    headers = " ".join(line for line in proc.stdout.splitlines() if line.startswith("case "))
    assert set(chosen + ["numpy-concat"]) <= set(headers.split())
    assert re.search(r"^plain\s+ok ", proc.stdout, re.M)


# 8. Every extra alone works ------------------------------------------------------------------------------
def test_tox_has_an_environment_per_extra_and_ci_runs_the_torch_one():
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    for extra in ("torch", "tf", "jax", "onnx"):
        assert tox.get(f"testenv:{extra}", "extras").split() == [extra, "test"], extra
    ci = (ROOT / ".ci" / "run").read_text()
    assert '-e ".[torch,test]"' in ci and '-e ".[all,test]"' in ci
