"""`python -m harness convert`: harness.convert() on files, for porting a trained LSTM.

    python -m harness convert --from torch lstm.safetensors \\
        --spec '{"input_size": 5, "hidden_size": 7, "num_layers": 2}' --to keras -o lstm_keras.npz --check

SRC is read as --from's file form (harness/files.py), imported with --spec (and --select), exported to
--to in --dtype and written to -o in that framework's form; what the export folded is printed, and the
spec of the written parameters (the --spec that reads them back). --check reads OUT back through --to's
import and compares, on random inputs, the float64 oracle on OUT's weights and --to's framework running
them (harness.runner.run_case) with the oracle on SRC's weights (harness.compare).

Exit status: 0 done; 1 the conversion cannot be done here (a feature the target cannot express, or a
framework a step needs is not installed); 2 bad usage or input (the message names the parameter, what
was expected and what was given); 3 --check found a disagreement or the check run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import backends, files
from ..backends import UnsupportedFeature
from ..canonical import CanonicalLSTM
from ..spec import LSTMSpec

OK, UNSUPPORTED, USAGE, DISAGREE = 0, 1, 2, 3
CHECK_BATCH, CHECK_STEPS = 3, 20
_TF1_FLAGS = ("forget_bias", "cell_clip", "proj_clip")


class Usage(ValueError):
    """A bad command line (exit status 2)."""


def add_parser(sub) -> None:
    """Register `convert` on `python -m harness`'s subcommands."""
    names = ", ".join(backends.names())
    p = sub.add_parser("convert", help="convert an LSTM's parameter file from one framework to another",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="file forms per backend:\n" + files.__doc__.split("\n\n")[2])
    p.add_argument("src", metavar="SRC", help="the parameter file (a TF checkpoint: its prefix, .index or folder)")
    p.add_argument("--from", dest="source", required=True, metavar="BACKEND", help=f"SRC's backend: {names}")
    p.add_argument("--to", dest="target", required=True, metavar="BACKEND", help="the backend to write")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="the file to write (suffix: see below)")
    p.add_argument("--spec", default=None,
                   help='the LSTM SRC holds, as JSON (\'{"input_size": 5, "hidden_size": 7}\') or a .json file; '
                        "numpy files carry their own; tf1 may give --forget-bias/--cell-clip/--proj-clip instead")
    p.add_argument("--select", default=None,
                   help="which LSTM, where SRC holds several (a name prefix or scope; keras: comma-separated layers)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="OUT's dtype (default float32)")
    for flag in _TF1_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                       metavar="VALUE" if flag == "forget_bias" else "VALUE|none",
                       help="tf1 without --spec: the TF1 cell's constructor argument (a checkpoint does not hold it)")
    p.add_argument("--check", action="store_true",
                   help="read OUT back and compare it, run by the oracle and by --to's framework, with SRC")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    try:
        source, target = backends.get(args.source), backends.get(args.target)
        files.output_form(target.name, args.out)
        spec = _spec_argument(args)  # or the TF1 cell's arguments, or None: the spec comes from SRC
        native = files.read(source.name, args.src, spec if isinstance(spec, LSTMSpec) else None)
        if not isinstance(spec, LSTMSpec):
            spec = _spec_from_source(native, spec, args.select)
        model = source.import_(native, spec, select=_select(args))
        print(f"read {source.name} parameters from {args.src}: {spec_json(spec)}")
        written = files.write(target.name, model, args.out, args.dtype)
        _report(written, target.name, args.dtype)
        if args.check:
            reloaded = target.import_(files.read(target.name, args.out, written.spec, "OUT"), written.spec)
            if not check(model, target.name, reloaded, args.dtype):
                return DISAGREE
    except UnsupportedFeature as exc:
        print(f"unsupported: {exc}", file=sys.stderr)
        return UNSUPPORTED
    except ImportError as exc:  # a framework a step needs
        print(f"not installed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return UNSUPPORTED
    except (ValueError, TypeError, KeyError, OSError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return USAGE
    return OK


# The spec --------------------------------------------------------------------------------------
def _spec_argument(args) -> LSTMSpec | dict | None:
    """--spec as an LSTMSpec; for tf1 without it, the cell's arguments (a dict); None for a numpy file."""
    given = [f"--{f.replace('_', '-')}" for f in _TF1_FLAGS if getattr(args, f) is not None]
    if given and args.source not in ("tf1", "tf1-basic"):
        raise Usage(f"{', '.join(given)}: only for --from tf1 / tf1-basic without --spec, got --from {args.source}")
    if args.spec is None:
        if args.source in ("tf1", "tf1-basic"):
            needed = ("forget_bias",) if args.source == "tf1-basic" else _TF1_FLAGS  # BasicLSTMCell has no clips
            missing = [f"--{f.replace('_', '-')}" for f in needed if getattr(args, f) is None]
            if missing:
                raise Usage(f"--from {args.source} needs --spec, or {', '.join(missing)}: the TF1 cell's constructor "
                            "arguments, which a checkpoint does not hold (TF1's defaults were forget_bias=1.0, "
                            "cell_clip none, proj_clip none; say what the code used)")
            return {"forget_bias": _number("--forget-bias", args.forget_bias, allow_none=False),
                    "cell_clip": _number("--cell-clip", args.cell_clip, allow_none=True),
                    "proj_clip": _number("--proj-clip", args.proj_clip, allow_none=True)}
        if args.source == "numpy":
            return None
        raise Usage(f"--spec is required for --from {args.source}: a {args.source} file holds weights, not the "
                    'LSTM they belong to; e.g. --spec \'{"input_size": 5, "hidden_size": 7, "num_layers": 2}\'')
    if given:
        raise Usage(f"{', '.join(given)}: give either --spec or the TF1 cell's arguments, not both")
    text = args.spec.strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise Usage(f"--spec: expected a JSON object or a .json file, got {text!r} (no such file)")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Usage(f"--spec: not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(data, dict):
        raise Usage(f"--spec: expected a JSON object of LSTMSpec fields, got {type(data).__name__} {data!r}")
    missing = [f for f in ("input_size", "hidden_size") if f not in data]
    if missing:
        raise Usage(f"--spec: missing field(s) {missing}; got {sorted(data)}")
    try:
        return LSTMSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise Usage(f"--spec: {exc}") from exc


def _spec_from_source(native, cell_arguments: dict | None, select) -> LSTMSpec:
    if isinstance(native, CanonicalLSTM):  # numpy: the spec is in the file
        return native.spec
    from ..backends import tf1

    return tf1.spec_from_checkpoint(native, **cell_arguments, select=select)


def spec_json(spec: LSTMSpec) -> str:
    """The spec as --spec JSON: the sizes and every field that differs from its default."""
    defaults = LSTMSpec(input_size=1, hidden_size=1).to_dict()
    return json.dumps({k: v for k, v in spec.to_dict().items()
                       if k in ("input_size", "hidden_size") or v != defaults[k]})


def _number(option: str, text: str | None, allow_none: bool) -> float | None:
    if text is None or (allow_none and text.lower() == "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise Usage(f"{option}: expected a number{' or none' if allow_none else ''}, got {text!r}") from None


def _select(args):
    if args.select and args.source == "keras" and "," in args.select:
        return [s.strip() for s in args.select.split(",")]
    return args.select


# Output ----------------------------------------------------------------------------------------
def _report(written: files.Written, target: str, dtype: str) -> None:
    print("folded: " + ("; ".join(written.folded) if written.folded else f"nothing (every feature is {target}'s own)"))
    print(f"wrote {target} parameters ({dtype}) to {', '.join(written.files)}:")
    width = max(len(k) for k in written.contents)
    for name, (kind, shape) in written.contents.items():
        print(f"  {name:<{width}}  {kind} {list(shape)}")
    print(f"spec of the written parameters (--spec to read them back): {spec_json(written.spec)}")


def check(source: CanonicalLSTM, target: str, reloaded: CanonicalLSTM, dtype: str) -> bool:
    """Compare OUT (read back) with SRC on random inputs: by the oracle, then in the target framework.

    The expected outputs are the float64 oracle on SRC's weights rounded to `dtype` (harness.runner.oracle_for);
    the framework runs OUT's weights through run_case, whose model_hook hands the backend these weights.
    """
    from ..catalogue import Case
    from ..compare import compare, tolerance_for
    from ..runner import oracle_for, run_case

    case = Case(name="convert --check", spec=source.spec, batch=CHECK_BATCH, steps=CHECK_STEPS,
                weights=lambda: source)
    _, (x, h0, c0), expected = oracle_for(case, dtype)
    tol = tolerance_for(dtype, "exact", target)
    print(f"check: SRC and OUT on random inputs x [{CHECK_STEPS}, {CHECK_BATCH}, {source.spec.input_size}] "
          f"with nonzero h0, c0; bound rtol {tol.rtol:g}, atol {tol.atol:g} ({dtype})")
    by_oracle = compare(source.spec, reloaded.forward(x, h0, c0), expected, tol)
    print("  float64 oracle on OUT: " + by_oracle.message(" with the oracle on SRC"))
    ok = by_oracle.ok
    if backends.get(target).reference:
        print(f"  {target} is the oracle itself: nothing more to run")
        return ok
    outcome = run_case(case, target, dtype, "cpu", "exact", model_hook=lambda _: reloaded)
    result = outcome.result
    if outcome.comparison is not None:
        print(f"  {target} running OUT: " + outcome.comparison.message(" with the oracle on SRC"))
        return ok and outcome.comparison.ok
    if result.status == "error":
        print(f"  {target} running OUT: error: {result.reason}")
        return False
    print(f"  {target} running OUT: {result.status}: {result.reason} (the oracle check above stands)")
    return ok
