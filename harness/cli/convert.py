"""`python -m harness convert`: harness.convert() on files, for porting a trained LSTM.

    python -m harness convert lstm.pt --from torch --to keras -o lstm.keras --check

SRC is read with the library made for its form (harness/readers: torch.save files through torch's weights-only
loader, .keras/.h5 with h5py, Flax msgpack, Orbax, SavedModels; the rest as harness/files.py reads them), and
the LSTMSpec comes from the file wherever it holds it (sizes, layers, directions, bias kind, peepholes,
projection); --spec (JSON, any subset of LSTMSpec's fields) or the TF1 flags give only what it lacks (TF1's
forget_bias and clips), and a field the file holds must match it. The LSTM is imported, exported to --to in
--dtype and written to -o in that framework's form; what the export folded is printed, and the spec of the
written parameters. --check runs SRC in its own framework from its own file and OUT in the target's, beside
the float64 oracle, on the same inputs, and prints every output part's worst error (harness/port_check.py).
-o that is SRC (or one of the files of a checkpoint or folder SRC) is refused before anything is read; NaN or
infinite weights are refused unless --allow-nonfinite (then --check compares the weights: SRC's outputs are
not finite).

Exit status: 0 done; 1 the conversion cannot be done here (a feature the target cannot express, or a
framework a step needs is not installed); 2 bad usage or input (the message names the parameter, what
was expected and what was given); 3 --check found a disagreement or the check run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import atomic, backends, extras, files, readers
from ..backends import NonFiniteWeights, UnsupportedFeature
from ..spec import LSTMSpec
from . import in_cli_terms, input_file_problem

OK, UNSUPPORTED, USAGE, DISAGREE = 0, 1, 2, 3
_TF1_FLAGS = ("forget_bias", "cell_clip", "proj_clip")


class Usage(ValueError):
    """A bad command line (exit status 2)."""


def add_parser(sub) -> None:
    """Register `convert` on `python -m harness`'s subcommands."""
    names = ", ".join(backends.names())
    p = sub.add_parser("convert", help="convert an LSTM's parameter file from one framework to another",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="file forms per backend:\n" + files.__doc__.split("\n\n")[2]
                       + "\n\nwhat else SRC may be (harness/readers):\n" + readers.__doc__.split("\n\n")[1])
    p.add_argument("src", metavar="SRC", help="the parameter file (a TF checkpoint: its prefix, .index or folder)")
    p.add_argument("--from", dest="source", required=True, metavar="BACKEND", help=f"SRC's backend: {names}")
    p.add_argument("--to", dest="target", required=True, metavar="BACKEND", help="the backend to write")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="the file to write (suffix: see below)")
    p.add_argument("--spec", default=None,
                   help="what SRC does not say about its LSTM, as JSON (any LSTMSpec fields, e.g. "
                        "'{\"forget_bias\": 1.0}') or a .json file; a field SRC holds must match it")
    p.add_argument("--select", default=None,
                   help="which LSTM, where SRC holds several (a name prefix or scope; keras: comma-separated layers)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="OUT's dtype (default float32)")
    for flag in _TF1_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                       metavar="VALUE" if flag == "forget_bias" else "VALUE|none",
                       help="tf1: the TF1 cell's constructor argument, which a checkpoint does not hold")
    p.add_argument("--check", action="store_true",
                   help="run SRC in its framework and OUT in --to's, beside the float64 oracle, and compare")
    p.add_argument("--inputs", default=None, metavar="X.npy",
                   help="--check's inputs: x [T, B, input_size] (time-major) as .npy, or an .npz of x, h0, c0 "
                        "(default: random, with nonzero h0, c0)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="convert NaN or infinite weights as they are (refused by default, naming the first one)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from .. import quiet

    with backends.allowing_nonfinite(args.allow_nonfinite), quiet.filtered_stderr():  # no framework chatter
        return _convert(args)


def _convert(args) -> int:
    try:
        source, target = backends.get(args.source), backends.get(args.target)
        # OUT is never SRC (nor a file of a checkpoint or folder SRC): refused before anything is read or written.
        atomic.refuse_same_file(files.source_files(args.src), files.output_files(target.name, args.out), "SRC", "-o")
        given, options = _given(args)
        needed = _needed_to_read(source.name, given)  # an .eqx is read against its cells' structure
        _check_inputs_option(args)
        src = readers.read(source.name, args.src, _select(args), needed)
        spec = readers.resolve(source.name, src, given, options)
        model = source.import_(src.native, spec, select=src.select)
        if args.inputs is not None:  # read and checked against SRC's sizes before OUT is written, not after
            from ..port_check import inputs_for

            inputs_for(spec, args.inputs, args.dtype)
        print(f"read {source.name} parameters from {args.src} ({src.form}): {spec_json(spec)}")
        for note in src.notes:
            print(f"note: {note}")
        written = files.write(target.name, model, args.out, args.dtype)
        _report(written, target.name, args.dtype)
        if args.check:
            from .. import port_check
            from . import progress

            with progress.steps("convert --check", None) as steps:
                steps.now(f"reading {args.out} back through {target.name}")
                out = readers.read(target.name, args.out, None, written.spec, "OUT")
                out_spec = readers.resolve(target.name, out, _open_fields(out, written.spec), {})
                reloaded = target.import_(out.native, out_spec, select=out.select)
                steps.now(f"running {source.name} and {target.name} on SRC's and OUT's weights")
                if not port_check.check(src, model, source.name, out, reloaded, target.name, args.dtype, args.inputs):
                    return DISAGREE
    except UnsupportedFeature as exc:
        return _failed(UNSUPPORTED, f"unsupported: {exc}")
    except ImportError as exc:  # a framework a step needs
        missing = getattr(exc, "name", None)
        return _failed(UNSUPPORTED, f"not installed: {type(exc).__name__}: {exc}{extras.hint(missing or '')}")
    except NonFiniteWeights as exc:
        return _failed(USAGE, f"error: SRC {args.src}: {exc}")
    except (ValueError, TypeError, KeyError, OSError) as exc:
        return _failed(USAGE, f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}")
    return OK


def _check_inputs_option(args) -> None:
    """--inputs are --check's: without it they would be read by nothing, and the user told nothing."""
    if args.inputs is None:
        return
    if not args.check:
        raise Usage(f"--inputs: the inputs of --check's run, which was not asked for: add --check (got --inputs "
                    f"{args.inputs})")
    problem = input_file_problem(args.inputs)
    if problem:
        raise Usage(f"--inputs: {problem}")


def _failed(status: int, message: str) -> int:
    """The message as every subcommand words one ("python -m harness convert: error: ..."), in the CLI's terms."""
    print(f"python -m harness convert: {in_cli_terms(message)}", file=sys.stderr)
    return status


# The spec --------------------------------------------------------------------------------------
def _given(args) -> tuple[dict, dict[str, str]]:
    """The spec fields the user gave (--spec, the TF1 flags), each checked alone, and the option of each."""
    flags = {f: getattr(args, f) for f in _TF1_FLAGS if getattr(args, f) is not None}
    if flags and args.source not in ("tf1", "tf1-basic"):
        given = ", ".join(f"--{f.replace('_', '-')}" for f in flags)
        raise Usage(f"{given}: only for --from tf1 / tf1-basic, got --from {args.source}")
    data = _spec_json(args.spec) if args.spec is not None else {}
    options = {f: "--spec" for f in data}
    for name, text in flags.items():
        option = f"--{name.replace('_', '-')}"
        if name in data:
            raise Usage(f"{option} and --spec both give {name}: give it once")
        data[name] = _number(option, text, allow_none=name != "forget_bias")
        options[name] = option
    for name, value in data.items():  # each field alone: a typo or a wrong type is named before SRC is read
        probe = {"input_size": 1, "hidden_size": 1, name: value}
        if name == "proj_clip" and value is not None:
            probe["proj_size"] = 1
        try:
            LSTMSpec.from_dict(probe)
        except (TypeError, ValueError) as exc:
            raise Usage(f"{options[name]}: {exc}") from exc
    return data, options


def _spec_json(text: str) -> dict:
    text = text.strip()
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
    return data


def _needed_to_read(source: str, given: dict) -> LSTMSpec | None:
    if source != "equinox":
        return None
    missing = [f for f in readers.REQUIRED if f not in given]
    if missing:
        raise Usage(f"--from equinox needs --spec with {', '.join(missing)} (and num_layers, bidirectional where "
                    "they are not 1, false): an .eqx file holds the cells' arrays, not their sizes")
    try:
        return LSTMSpec.from_dict(given)
    except (TypeError, ValueError) as exc:
        raise Usage(f"--spec: {exc}") from exc


def _open_fields(out: readers.Source, spec: LSTMSpec) -> dict:
    """What OUT cannot say about itself (TF1's forget_bias and clips; an .eqx's sizes): the written spec's."""
    if out.fields:
        return {f: getattr(spec, f) for f in out.open}
    return spec.to_dict()


def spec_json(spec: LSTMSpec, explicit: tuple[str, ...] = ()) -> str:
    """The spec as --spec JSON: the sizes, every field that differs from its default, and `explicit`."""
    defaults = LSTMSpec(input_size=1, hidden_size=1).to_dict()
    return json.dumps({k: v for k, v in spec.to_dict().items()
                       if k in ("input_size", "hidden_size", *explicit) or v != defaults[k]})


def _number(option: str, text: str | None, allow_none: bool) -> float | None:
    if text is None or (allow_none and text.lower() == "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise Usage(f"{option}: expected a number{' or none' if allow_none else ''}, got {text!r}") from None


def _select(args):
    if args.select and readers.family(args.source) == "keras" and "," in args.select:
        return [s.strip() for s in args.select.split(",")]
    return args.select


# Output ----------------------------------------------------------------------------------------
def _report(written: files.Written, target: str, dtype: str) -> None:
    print("folded: " + ("; ".join(written.folded) if written.folded else f"nothing (every feature is {target}'s own)"))
    print(f"wrote {target} parameters ({dtype}) to {', '.join(written.files)}:")
    width = max(len(k) for k in written.contents)
    for name, (kind, shape) in written.contents.items():
        print(f"  {name:<{width}}  {kind} {list(shape)}")
    explicit = ("forget_bias", "cell_clip", "proj_clip") if readers.family(target) == "tf1" else ()
    print(f"spec of the written parameters (--spec to read them back): {spec_json(written.spec, explicit)}")
