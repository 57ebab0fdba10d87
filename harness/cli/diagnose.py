"""`python -m harness diagnose`: two LSTM parameter files that should hold the same function; when they
disagree, which porting mistake explains it (harness.diagnose on files).

    python -m harness diagnose model.keras ported.pt --a-from keras --b-from torch

Each file is read as `convert` reads SRC (harness/readers: the spec from the file; --a-spec / --b-spec, JSON
or a .json file of LSTMSpec fields, give what it lacks, such as a TF1 checkpoint's forget_bias and clips) and
run as `convert --check` runs it, in its own framework. Inputs: random x [4, 4, in] with nonzero h0, c0, or
--inputs (x.npy, [T, B, in] time-major, or an .npz of x, h0, c0, lengths). --lengths 4,2,3 (or lengths [B] in the
--inputs .npz): a right-padded batch, which each file runs its framework's way (torch packs it, Keras masks it,
...); the search then names the ways a port drops or misuses lengths too. The search runs on the float64 oracle only.

Exit status: 0 the two agree; 1 a file holds what the canonical LSTM cannot express, or a framework is not
installed; 2 bad usage or input (the message names the option); 3 they disagree (the report names the mistake,
or says that no single one explains it and shows the closest).
"""

from __future__ import annotations

import argparse
import re
import sys

from .. import backends
from ..backends import UnsupportedFeature
from . import input_file, usage

AGREE, UNSUPPORTED, DISAGREE = 0, 1, 3


def add_parser(sub) -> None:
    names = ", ".join(backends.names())
    p = sub.add_parser("diagnose", help="name the porting mistake that makes two LSTM files disagree",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for side in ("a", "b"):
        p.add_argument(side, metavar=side.upper(), help=f"{side}'s parameter file (forms as convert's SRC)")
    for side in ("a", "b"):
        p.add_argument(f"--{side}-from", dest=f"{side}_from", required=True, metavar="BACKEND",
                       help=f"{side.upper()}'s backend: {names}")
        p.add_argument(f"--{side}-spec", dest=f"{side}_spec", default=None, metavar="JSON",
                       help=f"what {side.upper()} does not say about its LSTM (LSTMSpec fields as JSON or a .json "
                            "file, e.g. a TF1 checkpoint's "
                            "'{\"forget_bias\": 1.0, \"cell_clip\": null, \"proj_clip\": null}')")
        p.add_argument(f"--{side}-select", dest=f"{side}_select", default=None, metavar="NAME",
                       help=f"which LSTM, where {side.upper()} holds several (as convert's --select)")
    p.add_argument("--inputs", default=None, metavar="X.npy",
                   help="x [T, B, input_size] (time-major) as .npy, or an .npz of x, h0, c0, lengths (lengths: "
                        "as --lengths; default: random x [4, 4, input_size] with nonzero h0, c0)")
    p.add_argument("--lengths", default=None, metavar="N,N,...",
                   help="per-example lengths of a right-padded batch, one per example of x (e.g. 4,2,3): each file "
                        "runs them its framework's way, and the search names the ways a port misuses them "
                        "(default: none; without --inputs, one random example per length)")
    p.add_argument("--rtol", type=float, default=None, help="the bound's rtol (default: the tolerance table's)")
    p.add_argument("--atol", type=float, default=None, help="the bound's atol (default: the tolerance table's)")
    p.set_defaults(func=cmd_diagnose)


def _spec(args, side: str) -> dict:
    from .convert import Usage, _spec_json

    text = getattr(args, f"{side}_spec")
    if text is None:
        return {}
    try:
        return _spec_json(text)
    except Usage as exc:
        usage(args, str(exc).replace("--spec", f"--{side}-spec"))


def _lengths(args) -> list[int] | None:
    """--lengths as integers (their range and count against x are checked with x, naming --lengths)."""
    if args.lengths is None:
        return None
    parts = [p.strip() for p in args.lengths.split(",")]
    if not all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
        usage(args, f"--lengths: expected whole numbers separated by commas (e.g. 4,2,3), got {args.lengths!r}")
    return [int(p) for p in parts]


def _stored_lengths(args, x, given: list[int] | None) -> list[int] | None:
    """The lengths the --inputs .npz holds, checked against its x and named as the user's file and key; else --lengths
    (both at once: a usage error, not one silently preferred)."""
    from ..inputs import check_lengths
    from ..port_check import stored_lengths

    stored = stored_lengths(args.inputs)
    if stored is None:
        return given
    if given is not None:
        usage(args, f"--lengths: {args.inputs} holds lengths too ({stored.tolist()}); give them once: drop --lengths "
                    "or the file's lengths")
    try:
        return check_lengths(stored, x.shape[0], x.shape[1]).tolist()
    except (TypeError, ValueError) as exc:
        usage(args, f"--inputs: lengths in {args.inputs}: {str(exc).removeprefix('lengths: ')}")


def cmd_diagnose(args) -> int:
    from .. import quiet

    with quiet.filtered_stderr():  # the frameworks' start-up chatter off the terminal, as `run` keeps it
        return _diagnose(args)


def _diagnose(args) -> int:
    from .. import port_check, readers
    from ..diagnosis import diagnose
    from ..sides.files import read_file

    for side in ("a", "b"):
        try:
            backends.get(getattr(args, f"{side}_from"))
        except KeyError as exc:
            usage(args, f"--{side}-from: {exc.args[0]}")
    if args.inputs is not None:
        input_file(args, "--inputs", args.inputs)
    for option in ("rtol", "atol"):
        value = getattr(args, option)
        if value is not None and not value >= 0:
            usage(args, f"--{option}: expected a number >= 0, got {value}")
    lengths = _lengths(args)
    try:
        sides = []
        for side in ("a", "b"):
            given = _spec(args, side)
            try:
                sides.append(read_file(getattr(args, f"{side}_from"), getattr(args, side),
                                       getattr(args, f"{side}_select"), given, {k: f"--{side}-spec" for k in given},
                                       side.upper()))
            except readers.SpecError as exc:  # convert's options, said as this command's
                text = re.sub(r"needs (--[\w-]+, )*--[\w-]+ \(or (.*?) in --spec\)", r"needs \2 in --spec", str(exc))
                usage(args, text.replace("--from", f"--{side}-from").replace("--spec", f"--{side}-spec")
                      .replace("--select", f"--{side}-select"))
        x = h0 = c0 = None
        if args.inputs is not None:
            (x, h0, c0), _ = port_check.inputs_for(sides[0].spec, args.inputs, "float64", lengths_key=True)
            lengths = _stored_lengths(args, x, lengths)
        try:
            result = diagnose(*sides, x, h0=h0, c0=c0, lengths=lengths, rtol=args.rtol, atol=args.atol)
        except (ValueError, TypeError) as exc:
            if str(exc).startswith("lengths: ") and not isinstance(exc, UnsupportedFeature):  # as this command's option
                usage(args, "--" + str(exc))
            raise
    except UnsupportedFeature as exc:
        print(f"unsupported: {exc}", file=sys.stderr)
        return UNSUPPORTED
    except ImportError as exc:
        print(f"not installed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return UNSUPPORTED
    except (readers.SpecError, ValueError, TypeError, OSError) as exc:
        usage(args, str(exc))
    print(result)
    return AGREE if result.agree else DISAGREE
