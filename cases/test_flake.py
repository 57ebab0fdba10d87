"""The flake run (slow): 1000 weight seeds per backend and dtype over the catalogue's cases, seed i running case
i mod N (N = the cases whose weights come from the seed; the seed question's are fixed). A bound that holds only
for the cases' own seeds, or a backend that fails one weight draw in a thousand, shows here.

    pytest -m slow cases/test_flake.py -s [--backend torch] [--dtype float32] [--flake-seeds 1000]

Each test prints its tally (runs, unsupported, worst ratio to the bound and where) on one `flake:` line.
"""

from __future__ import annotations

import json

import pytest

from harness.catalogue import CASES
from harness.results import ERROR, FAIL, NOT_INSTALLED, PASS, SKIPPED, UNSUPPORTED
from harness.runner import run_case

SEEDED = [c for c in CASES if c.weights is None]


@pytest.mark.slow
def test_a_thousand_weight_seeds(backend_name, dtype, mode, request):
    seeds = request.config.getoption("--flake-seeds")
    tally = {"backend": backend_name, "dtype": dtype, "seeds": seeds, "ran": 0, "unsupported": 0,
             "worst_ratio": 0.0, "worst_abs": 0.0, "worst_at": "", "failures": []}
    for seed in range(seeds):
        case = SEEDED[seed % len(SEEDED)]
        r = run_case(case, backend_name, dtype, "cpu", mode, seed=seed).result
        if r.status == NOT_INSTALLED:
            pytest.skip(f"not installed: {r.reason}")
        if r.status in (UNSUPPORTED, SKIPPED):
            tally["unsupported"] += 1
            continue
        if r.status in (FAIL, ERROR):
            tally["failures"].append(f"{case.name} seed {seed}: {r.status}: {r.reason.splitlines()[0]}")
        if r.status in (PASS, FAIL):
            tally["ran"] += 1
            if r.worst_ratio > tally["worst_ratio"]:
                tally.update(worst_ratio=r.worst_ratio, worst_at=f"{case.name} seed {seed} {r.worst_path}")
            tally["worst_abs"] = max(tally["worst_abs"], r.worst_abs)
    print("\nflake: " + json.dumps(tally))
    assert not tally["failures"], "\n".join(tally["failures"])
