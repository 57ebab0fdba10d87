"""Command line: `python -m harness run | report | measure | bench | gpu | convert | diagnose | list`.

  run      the main job: the agreement matrix over every installed framework, printed as a table,
           saved as JSON lines and written as reports/agreement.html (plus reports/performance.html
           when reports/bench.json is there; --bench then runs `python -m harness bench`);
           --case/--backend/--dtype/--device narrow it, and a failing cell prints its full message.
           Exit status 1 if anything failed or errored; 2 (run, measure, bench, gpu, report) a bad option.
  report   rebuild the pages from saved results: results JSON lines, pytest-benchmark JSON, and
           --compare an earlier benchmark JSON to mark regressions.
  measure  the errors behind the tolerance table in harness/compare.py, over the catalogue and
           extra seeds, per backend, device, dtype and --precision (run it after changing a backend
           or on a new device, and update the evidence); a combination with no bound yet is
           measured without one.
  bench    the forward-pass benchmarks, one pytest process per backend and precision mode (threads,
           TF32 and jax x64 are fixed once per process), merged into one pytest-benchmark JSON
           (default reports/bench.json; per-process files in reports/bench/).
  gpu      everything a CUDA machine is for, in a prepared environment (no installs): the agreement
           cases on the GPU in exact mode (float32, float64, float16, bfloat16) and in tf32 mode
           (float32), then `bench` on cpu and cuda, then the pages (reports/agreement.html from the
           GPU results, reports/performance.html). Without a GPU every GPU step is skipped with
           its reason. `tox -e gpu` runs this after installing the CUDA builds.
  convert  a trained LSTM's parameter file from one framework's form to another's, never unpickling
           (harness/cli/convert.py; file forms in harness/files.py); --check runs both and compares.
  diagnose two LSTM files that should agree: when they do not, the porting mistake that explains it
           (harness/cli/diagnose.py; harness.diagnose).
  list     the cases, or the backends with their status (installed, or why not and the extra to install)
           and what each can express.

Every command checks all its options before it starts work; a bad one exits 2 with
"python -m harness CMD: error: --option: ...". `python -m harness CMD --help` lists each option and the
command's exit statuses.
"""

from __future__ import annotations

import argparse
import sys

from harness import quiet

quiet.environment()  # the frameworks' logging switches, before any of them is imported (as in conftest.py)

from harness import import_order  # noqa: E402

import_order.torch_before_tensorflow()  # as in conftest.py: torch is imported when TensorFlow first is

from harness.cli import bench, convert, diagnose, gpu, listing, measure, report, run  # noqa: E402

COMMANDS = (run, report, measure, bench, gpu, convert, diagnose, listing)  # each registers its own subcommand


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
