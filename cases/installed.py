"""What the test modules of live frameworks share: skipping a test whose backends' frameworks are not installed,
saying so (the project's skip-reason prefix), and one torch thread for their tiny LSTMs."""

from __future__ import annotations

import pytest

from harness import backends


def needs(*names: str) -> None:
    for name in names:
        reason = backends.get(name).installed()
        if reason:
            pytest.skip(f"not installed: {reason}")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread for a module's tiny LSTMs (x [4, 4, 3], [6, 3, 3]): on a loaded 2-core machine torch's
    two-thread pool costs ~0.2 s a call, one thread 0.1 ms (measured). Restored after the module; a module that
    imports this fixture gets it. Nothing to do where torch is not installed."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def imported_before_pytester(*modules: str) -> None:
    """Import `modules` (where installed) before a test's `pytester` fixture is made, from a module-scoped autouse
    fixture. pytester puts sys.modules back as it was when its fixture was made, so a framework first imported
    inside such a test (or inside its in-process pytest run) is dropped at teardown, and the next import of its
    C extensions corrupts memory: measured, `SystemError: ... bad call flags` in the next test that used
    TensorFlow, then a segmentation fault, whenever test_readme or test_pytest_plugin ran first in a process."""
    import importlib
    import importlib.util
    import pkgutil

    import harness

    for module in modules:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
    # Every harness module too (they import no framework): one first imported inside the window is dropped as well,
    # and its next import makes second copies of its classes beside the instances the first left in the registries
    # (measured: test_convert_cli's monkeypatched TorchBackend no longer the class of the registry's torch backend,
    # made inside test_readme's window, so the planted mistake went unseen).
    for info in pkgutil.walk_packages(harness.__path__, "harness."):
        importlib.import_module(info.name)
