"""pytest-xdist (the README's `python -m pytest -n auto`): what conftest.py decides for it. The records reaching the
controller are tested end to end in test_reports.py (test_pytest_report_option_with_xdist_workers)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import KERAS_WORKER_SCOPE, _check_parallel, backend_group, worker_scope
from harness import backends

NAMES = backends.names()


@pytest.mark.parametrize(("nodeid", "group"), [
    ("cases/test_agreement.py::test_agreement[plain-torch-float32]", "torch"),
    ("cases/test_agreement.py::test_agreement[plain-keras-torch-float32]", "keras-torch"),  # not torch
    ("cases/test_agreement.py::test_agreement[bidirectional-2layer-flax-nnx-cuda-float64]", "flax-nnx"),
    ("cases/test_agreement.py::test_agreement_across_sizes[jax-deep-narrow]", "jax"),
    ("cases/test_negative_controls.py::test_mistake_is_caught[onnx-reference-gate-order-igfo]", "onnx-reference"),
    ("cases/test_agreement.py::test_agreement[plain-no-such-backend-float32]", None),
    ("cases/test_jax.py::test_compiles_once_per_shape[flax]", None),  # only the agreement modules are grouped
    ("cases/test_agreement.py::test_readme_example", None),
])
def test_an_agreement_test_is_grouped_by_its_backend(nodeid, group):
    assert backend_group(nodeid, NAMES) == group


@pytest.mark.parametrize(("nodeid", "group"), [
    ("cases/test_conversion.py::test_native_canonical_native_is_exact[plain-keras-torch]", "keras-torch"),
    ("cases/test_bad_states.py::test_a_bad_input_is_refused[keras-jax-c0 with an extra layer entry]", "keras-jax"),
    ("cases/test_conversion.py::test_native_canonical_native_is_exact[plain-torch]", None),
    ("cases/test_agreement.py::test_agreement[plain-torch-float32]", "torch"),
])
def test_any_test_of_a_backend_in_a_worker_process_is_grouped(nodeid, group):
    """keras-jax, keras-torch (in a worker process beside this one's Keras backend): every test that names one."""
    assert backend_group(nodeid, NAMES, ["keras-jax", "keras-torch"]) == group


@pytest.mark.parametrize(("nodeid", "scope"), [
    ("cases/test_cli.py::test_a_default_run_prints_no_framework_chatter", KERAS_WORKER_SCOPE),
    ("cases/test_cli.py::test_a_default_run_fits_100_columns_without_progress_in_a_pipe_and_sees_the_plugin",
     KERAS_WORKER_SCOPE),  # the same module-scoped `python -m harness run`: made once
    ("cases/test_report_browser.py::test_agreement_page_in_browser", "module cases/test_report_browser.py"),
    ("cases/test_agreement.py::test_agreement[plain-torch-float32]", "backend torch"),
    # every test that starts a Keras worker process, named or not, in one xdist worker: each process starts once
    ("cases/test_conversion.py::test_native_canonical_native_is_exact[plain-keras-jax]", KERAS_WORKER_SCOPE),
    ("cases/test_agreement.py::test_agreement[plain-keras-torch-float32]", KERAS_WORKER_SCOPE),
    ("cases/test_negative_controls.py::test_mistake_is_caught[keras-jax-gate-order-igfo]", KERAS_WORKER_SCOPE),
    ("cases/test_cli.py::test_list_cases_and_backends", KERAS_WORKER_SCOPE),  # `list backends` asks each one
    ("cases/test_keras_backends.py::test_each_keras_backend_runs_in_its_own_process", KERAS_WORKER_SCOPE),
    ("cases/test_agreement.py::test_agreement[plain-keras-tensorflow-float32]", "backend keras-tensorflow"),
    ("cases/test_jax.py::test_compiles_once_per_shape[flax]", "cases/test_jax.py::test_compiles_once_per_shape[flax]"),
])
def test_what_runs_together_in_one_worker(nodeid, scope):
    assert worker_scope(nodeid, NAMES, ["keras-jax", "keras-torch"]) == scope


def test_benchmarks_refuse_xdist_workers():
    def config(bench: bool, processes):
        return SimpleNamespace(option=SimpleNamespace(numprocesses=processes), getoption={"--bench": bench}.__getitem__)

    with pytest.raises(pytest.UsageError, match="--bench: benchmarks are timed in one process"):
        _check_parallel(config(True, 2))
    _check_parallel(config(True, None))  # one process: fine
    _check_parallel(config(False, 2))  # tests alone: fine
