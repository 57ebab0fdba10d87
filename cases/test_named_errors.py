"""Bad input to the commands and loaders gets a named error (exit 2 from the CLI, the option or file named), never
a traceback, and a bad output path is refused before any work runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness import CanonicalLSTM, LSTMSpec, runner
from harness.__main__ import main
from harness.results import Result, read_jsonl, write_jsonl


def _usage(argv, capsys, message: str) -> str:
    """main(argv) exits 2 with `message` (a regex) after 'python -m harness CMD: error: ', and no traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(f"python -m harness {argv[0]}: error: {message}", err), err
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_case_runs(monkeypatch):
    def run_case(*args, **kwargs):
        raise AssertionError("a case ran before the options were checked")

    monkeypatch.setattr(runner, "run_case", run_case)


@pytest.fixture
def record(tmp_path):
    """A good results file's one record, as a dict."""
    result = Result(case="plain", backend="torch", device="cpu", dtype="float32", precision="exact", status="pass",
                    spec=LSTMSpec(input_size=2, hidden_size=3).to_dict(), worst_index=[0, 1], worst_abs=1e-7,
                    worst_ratio=0.1, rtol=2e-6, atol=2e-6, worst_path="y[fwd]")
    return json.loads(result.to_json())


# run: every output path is checked before the first case runs ----------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--case", ","], "--case: expected at least one case name, got ','"),
    (["--results", "{folder}"], "--results: .* is a folder; expected a file to write"),
    (["--reports", "{file}"], "--reports: .* is a file; expected a folder to write into"),
    (["--results", "{file}/r.jsonl"], "--results: cannot write .*: .* is a file, not a folder"),
    (["--bench", "--bench-json", "{folder}"], "--bench-json: .* is a folder; expected a file to write"),
    (["--compare", "{file}"], "--compare: .*file: not JSON, so not pytest-benchmark JSON"),
    (["--bench-json", "{file}"], "--bench-json: .*file: not JSON"),  # read for the page
])
def test_run_refuses_bad_paths_before_any_case_runs(argv, message, tmp_path, capsys, no_case_runs):
    (tmp_path / "file").write_text("not JSON")
    argv = [a.format(folder=tmp_path, file=tmp_path / "file") for a in argv]
    defaults = {"--results": str(tmp_path / "r.jsonl"), "--reports": str(tmp_path / "pages")}
    extra = [x for option, path in defaults.items() if option not in argv for x in (option, path)]
    _usage(["run", "--case", "plain", "--backend", "torch", *argv, *extra], capsys, message)


def test_bench_refuses_an_output_folder_before_any_benchmark(tmp_path, capsys, monkeypatch):
    from harness.cli import bench

    monkeypatch.setattr(bench, "pytest", lambda *a, **k: pytest.fail("a benchmark ran before --out was checked"))
    _usage(["bench", "--backend", "torch", "--out", str(tmp_path)], capsys, "--out: .* is a folder")


# report: records, files and folders ------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"worst_abs": "abc"}, r"field 'worst_abs': expected float \| null, got str 'abc'"),
    ({"spec": "oops"}, r"field 'spec': expected dict\[str, Any\], got str 'oops'"),
    ({"worst_index": None}, r"field 'worst_index': expected list\[int\], got NoneType None"),
    ({"seed": True}, "field 'seed': expected int, got bool True"),
    ({"status": "great"}, "Result.status must be one of"),
])
def test_report_names_a_record_of_the_wrong_types(change, message, record, tmp_path, capsys):
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({**record, **change}) + "\n")
    _usage(["report", "--results", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "out")], capsys,
           f"--results: .*r.jsonl:2: not a result record \\({message}")
    assert not (tmp_path / "out").exists()  # refused before any page was written


def test_a_good_record_reads_back(record, tmp_path):
    """The type check accepts what write_jsonl writes (ints for floats, nulls where a field allows them)."""
    (tmp_path / "r.jsonl").write_text(json.dumps({**record, "worst_abs": 0, "seconds": None}) + "\n")
    first = read_jsonl(tmp_path / "r.jsonl")
    write_jsonl(first, tmp_path / "again.jsonl")
    assert read_jsonl(tmp_path / "again.jsonl") == first and first[0].worst_index == [0, 1]


@pytest.mark.parametrize("argv, message", [
    (["--results", "{missing}"], "--results: .*missing.jsonl does not exist"),
    (["--results", "{folder}"], "--results: .* is a folder; expected a file"),
    (["--results", "{results}", "--out", "{results}"], "--out: .* is a file; expected a folder"),
    (["--bench-json", "{not_json}"], r"--bench-json: .*bench.json: not JSON, so not pytest-benchmark JSON \(Expecting "
                                     "value"),
    (["--bench-json", "{other_json}"], "--bench-json: .*other.json: expected pytest-benchmark JSON with a 'benchmarks' "
                                       "list"),
    (["--results", "{results}", "--compare", "{not_json}"], "--compare: .*bench.json: not JSON"),
    (["--results", "{results}", "--compare", "{missing}"], "--compare: .*missing.jsonl does not exist"),
])
def test_report_names_a_bad_file_or_folder(argv, message, record, tmp_path, capsys):
    paths = {"missing": tmp_path / "missing.jsonl", "folder": tmp_path, "results": tmp_path / "r.jsonl",
             "not_json": tmp_path / "bench.json", "other_json": tmp_path / "other.json"}
    paths["results"].write_text(json.dumps(record) + "\n")
    paths["not_json"].write_text("<html>not JSON</html>")
    paths["other_json"].write_text(json.dumps({"results": []}))
    argv = [a.format(**paths) for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "out")]
    _usage(["report", *argv, *out], capsys, message)


# Loading a canonical file ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, cause", [
    ("cut.npz", lambda good: good[: len(good) // 2], "BadZipFile|EOFError"),
    ("noise.npz", lambda good: b"PK\x03\x04" + b"\x00" * 40, "BadZipFile|EOFError"),
    ("cut.safetensors", lambda good: good[: len(good) // 2], "SafetensorError"),
    ("empty.safetensors", lambda good: b"", "SafetensorError"),
])
def test_load_names_the_file_it_cannot_read(name, content, cause, tmp_path):
    good = CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3)).save(tmp_path / ("good" + name[name.index("."):]))
    (tmp_path / name).write_bytes(content(good.read_bytes()))
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / name))}: not a file CanonicalLSTM.save wrote "
                                         f"\\(({cause})"):
        CanonicalLSTM.load(tmp_path / name)


def test_load_names_the_file_whose_metadata_is_not_a_spec(tmp_path):
    model = CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3))
    for meta in ({**model.metadata(), "spec": "{not json"}, {k: v for k, v in model.metadata().items() if k != "spec"}):
        np.savez(tmp_path / "m.npz", __metadata__=np.array(json.dumps(meta)), **model.tensors())
        with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'm.npz'))}: metadata 'spec' is not an "
                                             "LSTMSpec"):
            CanonicalLSTM.load(tmp_path / "m.npz")
