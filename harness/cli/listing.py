"""`python -m harness list cases|backends`: what --case and --backend accept.

  cases     each catalogue case: its spec (as convert's --spec JSON), batch, steps, layout, initial state, and
            what it is for;
  backends  each backend: where it comes from (built-in, or which distribution's `lstm_harness.backends` entry
            point), its status here (installed, or why not and the extra to install), what it runs, what its
            framework holds natively, what the harness folds for it and what it refuses, its dtypes and devices
            (a device missing here: why). Listing backends imports every framework, as `run` does.

Exit status: 0; 2 a bad argument.
"""

from __future__ import annotations

import argparse

from . import matrix


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list the cases or the backends (status, extra to install, capabilities)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("cases", "backends"), help="cases: the catalogue; backends: status and capabilities")
    p.set_defaults(func=cmd_list)


def cmd_list(args) -> int:
    lines = _cases() if args.what == "cases" else _backends()
    print("\n".join(lines))
    return 0


def _cases() -> list[str]:
    from harness import catalogue

    from .convert import spec_json

    columns = matrix.width()
    lines = [f"{len(catalogue.CASES)} cases (--case NAME), and {len(catalogue.SIZE_SWEEP)} larger ones in the "
             f"size sweep (measure, pytest's test_agreement_across_sizes):"]
    for case in list(catalogue.CASES) + list(catalogue.SIZE_SWEEP):
        sweep = " (size sweep)" if case in catalogue.SIZE_SWEEP else ""
        layout = "batch-first" if case.batch_first else "time-major"
        state = "nonzero h0, c0" if case.initial_state else "zero initial state"
        lines += [""] + matrix.wrap(f"{case.name}{sweep}: {spec_json(case.spec)}; batch {case.batch}, {case.steps} "
                                    f"steps, {layout}, {state}" + (f"; {case.about}" if case.about else ""), columns)
    return lines


def capabilities(backend) -> list[str]:
    """What a backend's framework holds natively, what the harness folds for it, what it refuses."""
    caps = backend.capabilities
    features = (("projection", caps.projection), ("peepholes", caps.peephole), ("cell_clip", caps.cell_clip),
                ("proj_clip", caps.proj_clip), ("gate_clip", caps.gate_clip))
    holds = (["two biases"] if caps.double_bias else []) + (["run-time forget_bias"] if caps.forget_bias else []) \
        + [f for f, held in features if held]
    folds = ([] if caps.double_bias else ["b_ih + b_hh into one bias"]) + \
        ([] if caps.forget_bias else ["forget_bias into the bias"])
    refuses = [f for f, held in features if not held]
    return [f"holds: {', '.join(holds) or 'one bias, nothing more'}",
            f"folds: {', '.join(folds) or 'nothing'}",
            f"refuses: {', '.join(refuses) or 'nothing'}",
            f"dtypes: {', '.join(caps.dtypes)}; devices: {', '.join(caps.devices)}"]


def _backends() -> list[str]:
    from harness import backends

    from . import progress
    from .run import preload

    names = backends.names()
    with progress.steps("list backends", len(names)) as steps:
        preload(names, steps)
    columns = matrix.width()
    lines = [f"{len(names)} backends (--backend NAME in run, measure, bench, gpu and pytest):"]
    for name in names:
        backend = backends.get(name)
        reason = backend.installed()
        status = f"not installed: {reason}" if reason else f"installed (runs on {backend.runtime()})"
        role = "the reference (the float64 oracle; never a subject)" if backend.reference else backend.description
        about = [status, role, f"from: {backends.origin(name)}"]
        if not reason:
            about += capabilities(backend)
            missing = {d: why for d, why in backend.devices_present().items() if why}
            about += [f"{device} not here: {why}" for device, why in missing.items()]
        lines += ["", name] + [line for text in about for line in matrix.wrap(text, columns, indent="  ")]
    for name, why in backends.IGNORED.items():
        lines += [""] + matrix.wrap(f"ignored: {why}", columns)
    return lines
