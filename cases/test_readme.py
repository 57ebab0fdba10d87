"""The README's capability table says what each backend's supports() answers (it is checked, not hand-kept), and
its examples of checking a port run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import LSTMSpec, backends
from installed import imported_before_pytester

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def frameworks_before_pytester():
    """Module-scoped, so made before the test's pytester (see imported_before_pytester)."""
    imported_before_pytester("numpy.random", "torch", "keras")

README = Path(__file__).resolve().parents[1] / "README.md"
BASE = LSTMSpec(input_size=2, hidden_size=3)
PROBES = {  # column -> the spec whose support it shows
    "projection": BASE.replace(proj_size=2),
    "peepholes": BASE.replace(peephole=True),
    "cell_clip": BASE.replace(cell_clip=0.5),
    "cell_clip=0": BASE.replace(cell_clip=0.0),
    "proj_clip": BASE.replace(proj_size=2, proj_clip=0.5),
    "gate_clip": BASE.replace(gate_clip=0.5),
}


def lengths_cell(backend) -> str:
    """Per-example lengths: '–' where unsupported, else what y holds at padded steps (by direction count)."""
    caps = backend.capabilities
    if backend.supports(BASE, caps.dtypes[0], caps.devices[0], lengths=True) is not None:
        return "–"
    one, two = backend.padding(BASE), backend.padding(BASE.replace(bidirectional=True))
    return one if one == two else f"{one}; bidirectional: {two}"


def capability_rows() -> list[str]:
    """The table's rows, as supports() answers them on each backend's first dtype and device."""
    rows = []
    for name in backends.names():
        backend = backends.get(name)
        caps = backend.capabilities
        cells = ["✓" if caps.double_bias else "folded", "✓" if caps.forget_bias else "folded"]
        cells += ["✓" if backend.supports(spec, caps.dtypes[0], caps.devices[0]) is None else "–"
                  for spec in PROBES.values()]
        cells.append(lengths_cell(backend))
        rows.append(f"| `{name}` | {' | '.join(cells)} | {', '.join(caps.dtypes)} |")
    return rows


def test_the_capability_table_is_what_the_backends_support():
    header = (f"| backend | two biases | run-time forget_bias | {' | '.join(PROBES)} | lengths (y at padded steps) "
              "| dtypes |")
    text = README.read_text()
    assert header in text
    missing = [row for row in capability_rows() if row not in text]
    assert not missing, "README.md's capability table is out of date; these rows are true now:\n" + "\n".join(missing)


def _section_blocks(heading: str, language: str) -> list[str]:
    text = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_the_checking_a_port_examples_run(frameworks_before_pytester, pytester, capsys):
    """The README's assert_equivalent / diagnose example runs and prints what the README shows; its pytest
    fixture example passes in a throwaway pytest run."""
    for module in ("torch", "keras"):
        pytest.importorskip(module, reason=f"not installed: {module}")
    example, fixture_example = _section_blocks("Checking a port: assert_equivalent, a pytest fixture, diagnose",
                                               "python")
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    shown = README.read_text().split(example, 1)[1].split("```\n")[2]  # the output block after the example
    assert "explained by one mistake:" in shown
    for line in shown.splitlines():
        prefix = line.split(": |diff|")[0].split(" at (")[0]  # the numbers are this machine's
        assert prefix in printed, prefix
    pytester.makepyfile(test_port=fixture_example)
    from test_pytest_plugin import plugin

    pytester.runpytest("-p", "no:cacheprovider", *plugin()).assert_outcomes(passed=1)
