"""Third-party backends: the `lstm_harness.backends` entry point (the example package in cases/plugin_example),
seen by the registry, the command line, the pytest options and the reproduce commands; a plugin that cannot load
or that takes a built-in name never breaks the harness; a backend registered from Python reproduces too.
"""

from __future__ import annotations

import re
import shlex
import warnings

import numpy as np
import pytest

from harness import backends, catalogue, extras
from harness.__main__ import main
from harness.results import FAIL, NOT_INSTALLED, PASS, UNSUPPORTED
from harness.runner import run_case
from plugin_site import install_example

NAME = "numpy-concat"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The example installed on a fresh sys.path entry, and a registry that has not looked for entry points yet."""
    site = install_example(tmp_path / "site", {"example-broken": "lstm_harness_no_such_module:Backend",
                                               "example-misnamed": "lstm_harness_example:ConcatBackend",
                                               "torch": "lstm_harness_example:ConcatBackend"})
    monkeypatch.syspath_prepend(str(site))
    for name in ("_REGISTRY", "_ORIGINS", "_INSTANCES", "IGNORED"):
        monkeypatch.setattr(backends, name, dict(getattr(backends, name)))
    monkeypatch.setattr(backends, "_entry_points_loaded", False)
    return site


def test_an_entry_point_backend_is_registered_lazily_with_its_origin(plugin):
    with pytest.warns(RuntimeWarning, match="entry point torch = lstm_harness_example:ConcatBackend .* ignored"):
        names = backends.names()
    assert NAME in names and NAME in backends.subjects()
    assert backends.origin(NAME) == (f"entry point {NAME} = lstm_harness_example:ConcatBackend of "
                                     "lstm-harness-example 0.1.0")
    assert backends.origin("torch") == backends.BUILT_IN and type(backends.get("torch")).__name__ == "TorchBackend"


def test_the_example_backend_agrees_and_refuses_what_it_cannot_express(plugin):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        backend = backends.get(NAME)
    assert backend.installed() is None
    for case in ("plain", "bidirectional-2layer", "batch-first", "zero-initial-state"):
        for dtype in ("float32", "float64"):
            r = run_case(catalogue.get_case(case), NAME, dtype).result
            assert r.status == PASS, r.reason
    r = run_case(catalogue.get_case("projection"), NAME, "float64").result
    assert r.status == UNSUPPORTED and "projection" in r.reason
    spec = catalogue.get_case("bidirectional-2layer").spec
    model = catalogue.get_case("bidirectional-2layer").model()
    native = backend.export(model, np.float64)
    assert native["l1.bw.kernel"].shape == (2 * 7 + 7, 4 * 7) and native.folded
    back = backend.import_(native, spec)
    assert back == model.fold_biases()  # import_ is export's exact inverse


def test_a_plugin_that_cannot_load_is_not_installed_with_why(plugin):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        broken, misnamed = backends.get("example-broken"), backends.get("example-misnamed")
    assert "lstm_harness_no_such_module:Backend could not be loaded (ModuleNotFoundError" in broken.installed()
    assert "of lstm-harness-example 0.1.0" in broken.installed()
    assert "is a Backend named 'numpy-concat', expected" in misnamed.installed()
    r = run_case(catalogue.get_case("plain"), "example-broken", "float32").result
    assert r.status == NOT_INSTALLED and "could not be loaded" in r.reason


def test_the_command_line_and_the_pytest_options_see_it(plugin, capsys):
    import conftest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["run", "--case", "plain", "--backend", NAME, "--dtype", "float64", "--results", "",
                     "--reports", ""]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^plain\s+ok ", out, re.M) and NAME in out

    class Config:  # what conftest's option check reads
        def getoption(self, name):
            return {"--backend": NAME}.get(name, "")
    conftest._check_options(Config())  # no pytest.UsageError: --backend numpy-concat is known


def test_reproduce_commands_work_for_entry_point_and_python_registered_backends(plugin, monkeypatch, capsys,
                                                                              tmp_path):
    """An entry point's backend is the CLI's own; one registered from Python is registered again by the command."""
    monkeypatch.chdir(tmp_path)  # the reproduce command writes reports/ where it runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = run_case(catalogue.get_case("plain"), NAME, "float64").result
    argv = shlex.split(r.reproduce)
    assert argv[:3] == ["python", "-m", "harness"]
    assert main(argv[3:] + ["--results", "", "--reports", ""]) == 0

    pytest.importorskip("torch", reason=extras.skip_reason("torch", "the sloppy backend is torch's"))
    backends.register("sloppy", "report_samples:SloppyBackend")  # only this process knows it
    failed = run_case(catalogue.get_case("plain"), "sloppy", "float64").result
    assert failed.status == FAIL and backends.origin("sloppy") == backends.REGISTERED
    python, flag, code = shlex.split(failed.reproduce)
    assert (python, flag) == ("python", "-c") and failed.reproduce in failed.reason
    monkeypatch.setattr(backends, "_REGISTRY", {k: v for k, v in backends._REGISTRY.items() if k != "sloppy"})
    monkeypatch.setattr(backends, "_INSTANCES", {k: v for k, v in backends._INSTANCES.items() if k != "sloppy"})
    with pytest.raises(SystemExit) as exit_:  # as in a new process: the command registers the backend itself
        exec(code, {})
    assert exit_.value.code == 1 and "FAIL plain sloppy cpu float64" in capsys.readouterr().out
