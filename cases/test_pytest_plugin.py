"""The pytest plugin users get (harness/pytest_plugin.py, entry point pytest11 `lstm_harness`): its fixture in a
throwaway pytest run (pytester), and what loading it must not do: add the project's own options, or import any
framework."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from installed import imported_before_pytester

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module", autouse=True)
def _frameworks_before_pytester():
    imported_before_pytester("numpy.random", "torch")  # what the in-process runs below import

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "equinox", "onnx", "onnxruntime")


def installed() -> bool:
    return any(e.value == "harness.pytest_plugin" for e in entry_points(group="pytest11"))


def plugin() -> list[str]:
    """pytest's arguments to load the plugin: none where the package's entry point does (an environment installed
    before the entry point existed loads it by name, and only the test below fails, saying to reinstall)."""
    return [] if installed() else ["-p", "harness.pytest_plugin"]


def test_the_plugin_is_installed_as_a_pytest11_entry_point():
    assert installed(), "no pytest11 entry point for harness.pytest_plugin: reinstall the package (pip install -e .)"


def test_loading_it_adds_no_option_and_imports_no_framework(pytester, monkeypatch):
    """In a fresh process (a subprocess: here every framework is imported already), pytest loads the plugin by its
    entry point; when the user's test runs, no framework has been imported, and none of the project's options
    (--backend, --results, ...) exists."""
    pytester.makepyfile(f"""
        import sys
        import pytest

        def test_loaded(request):
            name = {"lstm_harness" if installed() else "harness.pytest_plugin"!r}
            assert request.config.pluginmanager.hasplugin(name)
            assert [m for m in {FRAMEWORKS!r} if m in sys.modules] == []
            for option in ("backend", "results", "dtype", "device", "precision", "report"):
                with pytest.raises(ValueError):
                    request.config.getoption(option)
    """)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this checkout's harness and metadata, as this process sees them
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *plugin()).assert_outcomes(passed=1)


def test_the_fixture_passes_and_fails_naming_both_sides(pytester):
    pytest.importorskip("torch", reason="not installed: torch")
    pytester.makepyfile("""
        import torch
        from harness import CanonicalLSTM, LSTMSpec, convert, mistakes

        MODEL = CanonicalLSTM.random(LSTMSpec(input_size=3, hidden_size=4)).rounded("float32")

        def lstm(model):
            module = torch.nn.LSTM(3, 4)
            state = convert(model, "numpy", "torch", model.spec)
            module.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
            return module

        def test_port(lstm_equivalence):
            assert lstm_equivalence(lstm(MODEL), MODEL).ok

        def test_permuted_port(lstm_equivalence):
            lstm_equivalence(lstm(MODEL), MODEL)
            lstm_equivalence(MODEL, lstm(mistakes.get("gate-order-igfo").plant(MODEL)))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf", *plugin())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: assert_equivalent: b not within the bound of the float64 oracle on a's weights*",
        "*- lstm-harness equivalence -*",
        "check 1: equivalent (float32, *",
        "check 2: FAILED",
        "assert_equivalent: b not within the bound of the float64 oracle on a's weights",
        "  a: CanonicalLSTM *(numpy, float64; the float64 oracle): close, *",
        "  b: torch.nn.LSTM (torch, float32; the user's torch.nn.LSTM itself): NOT close",
    ])
