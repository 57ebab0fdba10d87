"""harness/atomic.py, the one write path: a write that fails part-way leaves the earlier file byte for byte and no
temporary behind; a link stays a link; permissions are kept; and nothing else in harness/ writes a file."""

from __future__ import annotations

import ast
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness import CanonicalLSTM, LSTMSpec, atomic, files

ROOT = Path(__file__).resolve().parents[1]

# Run in a subprocess: each writer writes a small file, then, under a file-size limit smaller than its second
# (bigger) version, writes again. SIGXFSZ ignored: the write fails with EFBIG (a full disk, a quota), and the
# harness's code sees an OSError. Prints {writer: [error, earlier file unchanged, files left in the folder, size]};
# then it is killed by SIGXFSZ in the middle of saving over killed.npz.
_WRITERS = r'''
import json, os, resource, signal, sys
from pathlib import Path
from harness import CanonicalLSTM, LSTMSpec, files, results
from harness.report import page

small, big = (CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=h)) for h in (2, 64))
record = lambda reason: results.Result("plain", "torch", "cpu", "float32", "exact", "pass", reason=reason)
writers = {
    "files.write torch .safetensors": lambda m, p: files.write("torch", m, p / "w.safetensors", "float32"),
    "files.write keras .npz": lambda m, p: files.write("keras", m, p / "w.npz", "float32"),
    "files.write onnx .onnx": lambda m, p: files.write("onnx", m, p / "w.onnx", "float32"),
    "files.write jax-cudnn .npy": lambda m, p: files.write("jax-cudnn", m, p / "w.npy", "float32"),
    "CanonicalLSTM.save .npz": lambda m, p: m.save(p / "c.npz"),
    "CanonicalLSTM.save .safetensors": lambda m, p: m.save(p / "c.safetensors"),
    "results.write_jsonl": lambda m, p: results.write_jsonl([record("x" * m.spec.hidden_size ** 3)], p / "r.jsonl"),
    "report page": lambda m, p: page.write("<p>" + "x" * m.spec.hidden_size ** 3, p / "agreement.html"),
}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
out = {}
for name, write in writers.items():
    folder = Path(sys.argv[1]) / str(len(out))
    folder.mkdir()
    write(small, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # the small files are smaller, the big ones are not
    try:
        write(big, folder)
        error = None
    except Exception as exc:  # OSError(EFBIG), or a library's own error around it (safetensors)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    out[name] = [error, after == before, sorted(after), max(map(len, before.values()))]
print(json.dumps(out), flush=True)
# Last, killed outright in the middle of a write (SIGXFSZ's default action; no clean-up can run)
killed = Path(sys.argv[1]) / "killed.npz"
small.save(killed)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
big.save(killed)
'''


def _python(script: str, *argv, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *map(str, argv)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_a_write_that_fails_part_way_leaves_the_earlier_file_and_no_temporary(tmp_path):
    for module in ("onnx", "safetensors"):
        pytest.importorskip(module, reason=f"not installed: {module}")
    proc = _python(_WRITERS, tmp_path)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-3000:]  # killed at the end, as planned
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert len(outcome) == 8
    for name, (error, unchanged, left, small_size) in outcome.items():
        assert small_size < 4096, name  # the first write was not limited
        # the second one was cut short: EFBIG ("File too large"), or numpy's own "N requested and M written"
        assert error and ("File too large" in error or "written" in error), (name, error)
        assert unchanged, name  # ...and the file is the earlier one, byte for byte
        assert len(left) == 1 and not left[0].startswith("."), (name, left)  # no temporary left behind
    # killed outright part-way: the earlier file is whole (a hidden temporary may remain: no clean-up ran)
    assert CanonicalLSTM.load(tmp_path / "killed.npz").spec.hidden_size == 2


def test_a_failed_checkpoint_write_keeps_the_earlier_checkpoint(tmp_path, monkeypatch):
    """A TF checkpoint is two files: a SaveV2 that fails after writing part of them changes neither."""
    from harness import backends

    if backends.get("tf1").installed():
        pytest.skip(f"not installed: {backends.get('tf1').installed()}")
    import tensorflow as tf

    prefix = tmp_path / "model.ckpt"
    files.write("tf1", CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=2)), prefix, "float32")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]

    def save_v2(prefix, **kwargs):
        Path(f"{prefix}.data-00000-of-00001").write_bytes(b"half a checkpoint")
        raise tf.errors.ResourceExhaustedError(None, None, "no space left on device")

    monkeypatch.setattr(tf.raw_ops, "SaveV2", save_v2)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        files.write("tf1", CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3)), prefix, "float32")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_link_stays_a_link_and_permissions_are_kept(tmp_path):
    real, link = tmp_path / "real.npz", tmp_path / "link.npz"
    CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=2)).save(real)
    link.symlink_to(real)
    real.chmod(0o640)
    files.write("numpy", CanonicalLSTM.random(LSTMSpec(input_size=2, hidden_size=3)), link, "float64")
    assert link.is_symlink() and link.resolve() == real  # the link kept, its file replaced
    assert CanonicalLSTM.load(real).spec.hidden_size == 3
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    umask = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "new.txt", "text")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # a new file: the umask's, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "new.txt", "real.npz"]


# Nothing else writes a file ------------------------------------------------------------------------------
_WRITING_METHODS = {"write_text", "write_bytes", "savez", "savez_compressed", "save_file", "tree_serialise_leaves",
                    "SaveV2", "savefig", "tofile", "save", "save_weights"}  # save: Keras's model.save, CanonicalLSTM's
_WRITING_FUNCTIONS = {"np.save", "numpy.save", "onnx.save", "onnx.save_model", "json.dump", "pickle.dump", "os.replace",
                      "os.rename", "shutil.copy", "shutil.copyfile", "shutil.copy2", "shutil.move", "shutil.copytree"}
_ALLOWED = {  # (file, call): why it is not a file written outside harness.atomic
    ("harness/report/charts.py", "savefig"): "into an in-memory buffer (the SVG is inlined in the page)",
    ("harness/kernels.py", "os.open"): "os.devnull, to silence a library's stderr",
    ("harness/files.py", "native.save"): "CanonicalLSTM.save, which writes through harness.atomic itself",
}


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{func.value.id}.{func.attr}" if isinstance(func.value, ast.Name) else func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _writes(call: ast.Call) -> bool:
    name = _call_name(call.func)
    short = name.rsplit(".", 1)[-1]
    if name == "os.open":
        flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if len(call.args) > 1 else set()
        return bool(flags & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"})
    if short == "open":  # open(path, mode) or Path.open(mode)
        modes = [k.value for k in call.keywords if k.arg == "mode"]
        modes += call.args[1:2] if isinstance(call.func, ast.Name) else call.args[:1]
        return any(not isinstance(m, ast.Constant) or set(str(m.value)) & set("wax+") for m in modes)
    return name in _WRITING_FUNCTIONS or short in _WRITING_METHODS


def writes_outside_atomic(source: str, filename: str) -> list[str]:
    """Calls that write a file and are not inside a `with atomic.<...>` block: 'file:line: call'."""
    found = []

    def visit(node: ast.AST, inside_atomic: bool) -> None:
        if isinstance(node, (ast.With, ast.AsyncWith)):
            inside_atomic = inside_atomic or any(
                isinstance(item.context_expr, ast.Call) and _call_name(item.context_expr.func).startswith("atomic.")
                for item in node.items)
        if isinstance(node, ast.Call) and not inside_atomic and _writes(node):
            name = _call_name(node.func)
            allowed = (name.startswith("atomic.")  # atomic.write_text / write_bytes: the helper itself
                       or (filename, name) in _ALLOWED or (filename, name.rsplit(".", 1)[-1]) in _ALLOWED)
            if not allowed:
                found.append(f"{filename}:{node.lineno}: {name}(...)")
        for child in ast.iter_child_nodes(node):
            visit(child, inside_atomic)

    visit(ast.parse(source), False)
    return found


def test_the_checker_finds_a_write_outside_atomic():
    source = ("open(p, 'w').write(s)\nnp.savez(p, **a)\nwith atomic.open_for_writing(p, 'wb') as fh:\n"
              "    np.savez(fh, **a)\nwith open(p) as fh:\n    pass\nPath(p).write_text(s)\njson.dump(d, fh)\n"
              "with atomic.writing(p) as tmp:\n    save_file(t, str(tmp))\nos.replace(a, b)\n'a'.replace('a', 'b')\n")
    assert writes_outside_atomic(source, "x.py") == ["x.py:1: open(...)", "x.py:2: np.savez(...)",
                                                     "x.py:7: write_text(...)", "x.py:8: json.dump(...)",
                                                     "x.py:11: os.replace(...)"]


def test_nothing_else_in_the_harness_writes_a_file():
    sources = [p for p in sorted((ROOT / "harness").rglob("*.py")) if p.name != "atomic.py"] + [ROOT / "conftest.py"]
    found = [hit for p in sources for hit in writes_outside_atomic(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == [], "write these through harness.atomic:\n" + "\n".join(found)
