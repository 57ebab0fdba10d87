"""The pytest plugin users get with the package (entry point `pytest11: lstm_harness`): the `lstm_equivalence`
fixture, harness.assert_equivalent for a user's own test suite, with every check it made in the test's report.

    def test_port(lstm_equivalence):
        lstm_equivalence(torch_model, keras_model)              # any two LSTMs harness.sides reads
        lstm_equivalence(torch_model, keras_model, x, rtol=1e-5)  # assert_equivalent's arguments

A failing check raises assert_equivalent's AssertionError (both sides named, every output part outside the
bound); the report of a test that used the fixture gets an "lstm-harness equivalence" section listing each
check, both sides and its verdict. Loading the plugin adds no command-line option (the project's --backend,
--results, ... belong to its own conftest.py) and imports no framework: harness.equivalence is imported when
the fixture is first called, and each framework only to read an object of it.
"""

from __future__ import annotations

import pytest

_CHECKS = pytest.StashKey[list]()
SECTION = "lstm-harness equivalence"


@pytest.fixture
def lstm_equivalence(request):
    """assert_equivalent(a, b, x=None, **kwargs), recorded for the test's report; returns its Equivalence."""
    checks = request.node.stash.setdefault(_CHECKS, [])

    def check(a, b, x=None, **kwargs):
        from harness.equivalence import assert_equivalent

        try:
            result = assert_equivalent(a, b, x, **kwargs)
        except AssertionError as exc:
            lines = str(exc).splitlines()
            checks.append(f"check {len(checks) + 1}: FAILED\n" + "\n".join(lines[:5]))
            raise
        except Exception as exc:  # a side that cannot be read: the check did not run
            checks.append(f"check {len(checks) + 1}: not run: {type(exc).__name__}: {exc}")
            raise
        checks.append(f"check {len(checks) + 1}: {result}")
        return result

    return check


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    checks = item.stash.get(_CHECKS, None)
    if checks and call.when == "call":
        report.sections.append((SECTION, "\n".join(checks)))
    return report
