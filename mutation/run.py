"""Mutation testing of the code that decides pass or fail: `tox -e mutation`, or `python mutation/run.py`.

The scope is named function by function in mutation/scope.toml. Each mutant is one of mutmut's mutations
(mutmut.mutation.mutators: numbers, strings, operators, comparisons, call arguments, ...) applied to one node
inside a named function, method or table; the planted mutants there (the canary: `compare` without abs())
must be killed too, which proves that the mutated code is what the tests ran. Each mutant runs the
framework-free test set (cases/verdict/) in a process forked from this one, which has imported numpy and
pytest but no framework and not the harness: the child imports the harness with the one mutated module served
from memory, runs the tests (-x) and exits; a failing test kills the mutant.

A survivor is either killed by a new test or listed in scope.toml as equivalent, with the reason; the run
fails on any other survivor and on a surviving planted mutant (an equivalent entry that did not survive is noted).

    python mutation/run.py                 every mutant in scope, 2 processes at a time
    python mutation/run.py --list          the mutants, without running them
    python mutation/run.py --only compare  the targets whose name contains "compare"
"""

from __future__ import annotations

import argparse
import difflib
import importlib.abc
import importlib.util
import os
import signal
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider
from mutmut.mutation.file_mutation import NEVER_MUTATE_FUNCTION_CALLS
from mutmut.mutation.mutators import mutation_operators

ROOT = Path(__file__).resolve().parents[1]
SCOPE = Path(__file__).with_name("scope.toml")
FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "equinox", "onnx", "onnxruntime")
SURVIVED, KILLED, TIMEOUT = "survived", "killed", "timeout"
TEXT_CALLS = ("print", "echo")  # what they are given is printed text (port_check prints through echo)


@dataclass
class Mutant:
    module: str  # harness.compare
    target: str  # compare, Comparison.ok, TOLERANCES
    line: int
    was: str  # the original line(s), stripped
    now: str  # the mutated line(s), stripped
    code: str  # the whole mutated module
    planted: str = ""  # the planted mutant's name
    status: str = ""
    killed_by: str = ""
    equivalent: str = ""  # the reason, when listed as equivalent

    @property
    def label(self) -> str:
        return f"{self.planted or self.target} ({self.module}:{self.line}): {self.was}  ->  {self.now}"


# Making the mutants ---------------------------------------------------------------------------------------
def module_path(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def _targets(module: cst.Module) -> dict[str, cst.CSTNode]:
    """Functions (name), methods (Class.name) and module-level assignments (NAME) by qualified name."""
    found: dict[str, cst.CSTNode] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            found[stmt.name.value] = stmt
        elif isinstance(stmt, cst.ClassDef):
            for inner in stmt.body.body:
                if isinstance(inner, cst.FunctionDef):
                    found[f"{stmt.name.value}.{inner.name.value}"] = inner
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)):
                    targets = small.targets if isinstance(small, cst.Assign) else [small]
                    for t in targets:
                        if isinstance(t.target, cst.Name):
                            found[t.target.value] = small
    return found


def _is_text_only(node: cst.CSTNode, parents) -> bool:
    """Text a human reads and no verdict depends on: a raised exception's, print()'s or echo()'s arguments, a
    bound's evidence=, a bare string statement (docstring)."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, cst.Arg) and parent.keyword is not None and parent.keyword.value == "evidence":
            return True
        if isinstance(parent, cst.Call) and child is not parent.func:
            func = parent.func
            if isinstance(func, cst.Name) and func.value in TEXT_CALLS:
                return True
            if isinstance(parents.get(parent), cst.Raise):
                return True
        if isinstance(parent, cst.Expr) and isinstance(parent.value, (cst.SimpleString, cst.ConcatenatedString)):
            return True
        child, parent = parent, parents.get(parent)
    return False


def _skip_subtree(node: cst.CSTNode, parents) -> bool:
    if isinstance(node, (cst.Decorator, cst.Annotation)):
        return True
    if isinstance(node, cst.Call) and (isinstance(parents.get(node), cst.Raise) or
                                       isinstance(node.func, cst.Name) and node.func.value in TEXT_CALLS):
        return True  # an exception's message, a printed line: text
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in NEVER_MUTATE_FUNCTION_CALLS:
        return True  # len(), isinstance(): mutmut's own exclusions
    return isinstance(node, (cst.BaseString, cst.Arg, cst.Call)) and _is_text_only(node, parents)


def _changed_lines(old: str, new: str) -> tuple[int, str, str]:
    a, b = old.splitlines(), new.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            return i1 + 1, " / ".join(s.strip() for s in a[i1:i2]), " / ".join(s.strip() for s in b[j1:j2])
    return 0, "", ""


def mutants_of(module_name: str, targets: list[str]) -> list[Mutant]:
    """Every mutmut mutation inside each named target of one module."""
    path = module_path(module_name)
    source = path.read_text()
    wrapper = MetadataWrapper(cst.parse_module(source))
    module = wrapper.module
    parents = wrapper.resolve(ParentNodeProvider)
    positions = wrapper.resolve(PositionProvider)
    found = _targets(module)
    out, seen = [], set()
    for spec in targets:
        name, _, pattern = spec.partition(":")  # "read:allow_pickle": only lines of `read` holding allow_pickle
        if name not in found:
            raise SystemExit(f"scope.toml: {module_name} has no function, method or table {name!r} "
                             f"(known: {', '.join(sorted(found))})")
        stack = [found[name]]
        while stack:
            node = stack.pop()
            if _skip_subtree(node, parents):
                continue
            stack.extend(reversed(node.children))
            line = source.splitlines()[positions[node].start.line - 1]
            if pattern and pattern not in line:
                continue
            for kind, operator in mutation_operators:
                if not isinstance(node, kind):
                    continue
                for mutated in operator(node):
                    code = module.deep_replace(node, mutated).code
                    if code in seen or code == source:
                        continue
                    seen.add(code)
                    try:
                        compile(code, str(path), "exec")
                    except SyntaxError:
                        continue
                    n, was, now = _changed_lines(source, code)
                    out.append(Mutant(module_name, name, n, was, now, code))
    return out


def planted(entries: list[dict]) -> list[Mutant]:
    out = []
    for e in entries:
        source = module_path(e["module"]).read_text()
        if source.count(e["was"]) != 1:
            raise SystemExit(f"scope.toml: planted mutant {e['name']!r} no longer applies: {e['was']!r} occurs "
                             f"{source.count(e['was'])} times in {e['module']} (expected once); update it")
        code = source.replace(e["was"], e["now"])
        n, was, now = _changed_lines(source, code)
        out.append(Mutant(e["module"], e["name"], n, was, now, code, planted=e["name"]))
    return out


# Running them ---------------------------------------------------------------------------------------------
class _Serve(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module's mutated source instead of the file (same name, same __file__)."""

    def __init__(self, name: str, code: str):
        self.name, self.code = name, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, module_path(fullname), loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(compile(self.code, module.__file__, "exec"), module.__dict__)


class _FirstFailure:
    def __init__(self, path: str):
        self.path = path

    def pytest_runtest_logreport(self, report):
        if report.failed and not os.path.exists(self.path):
            Path(self.path).write_text(report.nodeid)


def _child(mutant: Mutant | None, tests: list[str], note: str, quiet: bool) -> int:
    if mutant is not None:
        sys.meta_path.insert(0, _Serve(mutant.module, mutant.code))
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    import pytest

    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no installed plugin (hypothesis, benchmark) is needed here
    code = int(pytest.main([*tests, "-x", "-q", "--noconftest", "-p", "no:cacheprovider"],
                           plugins=[_FirstFailure(note)]))
    imported = [f for f in FRAMEWORKS if f in sys.modules]
    if imported:
        Path(note).write_text("imported " + ", ".join(imported))
        return 97
    harness = sys.modules.get("harness")
    if mutant is None and (harness is None or not Path(harness.__file__).resolve().is_relative_to(ROOT)):
        Path(note).write_text(f"harness imported from {getattr(harness, '__file__', None)}, not {ROOT}")
        return 98
    return code


def _start(mutant, tests, note, quiet) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            code = _child(mutant, tests, note, quiet)
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the parent's loop
            code = 99
        os._exit(code)
    return pid


def run_all(mutants: list[Mutant], tests_for, jobs: int, timeout: float, tmp: Path) -> None:
    pending = list(enumerate(mutants))
    running: dict[int, tuple[int, Mutant, float, str]] = {}
    done = 0
    while pending or running:
        while pending and len(running) < jobs:
            i, m = pending.pop(0)
            note = str(tmp / f"mutant-{i}.txt")
            running[_start(m, tests_for(m), note, True)] = (i, m, time.monotonic(), note)
        time.sleep(0.02)
        for pid, (i, m, started, note) in list(running.items()):
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished == 0:
                if time.monotonic() - started > timeout:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    m.status = TIMEOUT
                else:
                    continue
            else:
                code = os.waitstatus_to_exitcode(status)
                if code in (97, 98):
                    raise SystemExit(f"mutation run stopped: {Path(note).read_text()} (mutant {m.label})")
                m.status = SURVIVED if code == 0 else KILLED
                m.killed_by = Path(note).read_text() if os.path.exists(note) else f"exit status {code}"
            del running[pid]
            done += 1
            mark = {"survived": "S", "killed": ".", "timeout": "T"}[m.status]
            print(mark, end="\n" if done % 80 == 0 else "", flush=True)
    print()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the mutants in scope; run nothing")
    p.add_argument("--only", default="", help="only the targets whose module.name contains this text")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="processes at a time")
    p.add_argument("--timeout", type=float, default=0, help="seconds per mutant (default: 10x the clean run)")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    scope = tomllib.loads(SCOPE.read_text())
    tests = sorted(str(t.relative_to(ROOT)) for t in (ROOT / scope["tests"]).glob("test_*.py"))
    mutants = [m for t in scope["target"] for m in mutants_of(t["module"], t["names"])
               if args.only in f"{m.module}.{m.target}"]
    plants = planted(scope["planted"])
    if args.list:
        for m in plants + mutants:
            print(m.label)
        print(f"{len(mutants)} mutants in scope, {len(plants)} planted")
        return 0
    first = {t["module"]: [f"{scope['tests']}/{f}" for f in t.get("tests_first", [])] for t in scope["target"]}
    first.update({e["module"]: first.get(e["module"], []) for e in scope["planted"]})

    def tests_for(m: Mutant) -> list[str]:
        return list(dict.fromkeys(first.get(m.module, []) + tests))  # the module's own tests first (-x: sooner)

    # What every child needs, imported once here (no framework, not the harness): each child starts from it.
    import html.parser  # noqa: F401
    import pickle  # noqa: F401
    import zipfile  # noqa: F401

    import _pytest.python  # noqa: F401
    import jinja2  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import safetensors.numpy  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tmp = Path(tmp)
        start = time.monotonic()
        note = str(tmp / "clean.txt")
        pid = _start(None, tests, note, False)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        clean = time.monotonic() - start
        if code != 0:
            print(f"the unmutated code fails its tests (exit status {code}): "
                  f"{Path(note).read_text() if os.path.exists(note) else ''}")
            return 1
        timeout = args.timeout or max(10.0, 10 * clean)
        print(f"clean run: {clean:.1f} s, no framework imported; {len(plants)} planted + {len(mutants)} mutants, "
              f"{args.jobs} at a time, {timeout:.0f} s each at most")
        run_all(plants + mutants, tests_for, args.jobs, timeout, tmp)
    return report(plants, mutants, scope.get("equivalent", []), time.monotonic() - start, bool(args.only))


def report(plants: list[Mutant], mutants: list[Mutant], equivalents: list[dict], seconds: float, partial: bool) -> int:
    failed = False
    for m in plants:
        ok = m.status != SURVIVED
        failed |= not ok
        print(f"planted {'killed' if ok else 'SURVIVED'}: {m.planted}  [{m.killed_by}]")
    used = set()
    for m in mutants:
        if m.status != SURVIVED:
            continue
        for i, e in enumerate(equivalents):
            if (e["module"], e["target"], e["was"].strip(), e["now"].strip()) == (m.module, m.target, m.was, m.now):
                m.equivalent = e["why"]
                used.add(i)
    survivors = [m for m in mutants if m.status == SURVIVED and not m.equivalent]
    for m in survivors:
        print(f"SURVIVED {m.label}")
    stale = [e for i, e in enumerate(equivalents) if i not in used]
    if stale and not partial:  # killed here (another environment, say without ml_dtypes) or gone: say so
        for e in stale:
            print(f"note: scope.toml lists an equivalent mutant that did not survive here or no longer exists: "
                  f"{e['module']} {e['target']}: {e['was']} -> {e['now']}")
    equivalent = sum(1 for m in mutants if m.equivalent)
    killed = sum(1 for m in mutants if m.status in (KILLED, TIMEOUT))
    counted = len(mutants) - equivalent
    print(f"{killed} of {counted} mutants killed ({100 * killed / max(counted, 1):.1f}%), {equivalent} equivalent "
          f"(reasons in mutation/scope.toml), {len(survivors)} survived; "
          f"{sum(1 for m in mutants if m.status == TIMEOUT)} by timeout; {seconds:.0f} s")
    return 1 if failed or survivors else 0


if __name__ == "__main__":
    sys.exit(main())
