"""The one way this project writes a file: to a temporary beside the target, then renamed into place.

A write that fails part-way (a full disk, a quota, an exception, Ctrl-C) leaves the earlier file exactly as
it was and no temporary behind; readers never see a half-written file. A process killed outright (kill -9, a
power cut) leaves the earlier file too, and at most a hidden `.NAME.*.tmp` folder beside it. Files that belong
together are each replaced atomically, one after the other (tested in cases/test_atomic.py, which also checks
that nothing else in harness/ writes a file). Every writer in harness/ goes through here:

    with atomic.open_for_writing(path, "w") as fh:     # a file object, for code that writes to a stream
        fh.write(text)
    with atomic.writing(path) as tmp:                  # a path, for libraries that take a file name
        safetensors.numpy.save_file(tensors, tmp)      #   (safetensors, onnx.save, np.save, equinox)
    with atomic.writing_files([a, b]) as (ta, tb):     # several files that belong together (a TF checkpoint)
        ...

The temporary lies in a hidden folder in the target's own folder (so the rename is one filesystem's atomic
rename), under the target's own name, so libraries that add or check a suffix behave as for the target. It is
fsynced before the rename. Writing through a symbolic link replaces the file it points to and keeps the link.
`refuse_same_file` is the other half of the promise: a command never writes over its own input.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Sequence

__all__ = ["open_for_writing", "staging", "writing", "writing_files", "write_text", "write_bytes", "refuse_same_file",
           "same_file", "cannot_write"]


def _real(target: str | os.PathLike) -> Path:
    """The file a write lands in: a symbolic link is followed, so the link stays and its file is replaced."""
    target = Path(target)
    return target.resolve() if target.is_symlink() else target


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync; the rename still protects the target
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _keep_mode(temporary: Path, target: Path) -> None:
    """Give the new file the old one's permissions, or the umask's default for a new file (mkstemp's are 0600)."""
    if target.exists():
        mode = target.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)


@contextlib.contextmanager
def staging(targets: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """A temporary folder beside the targets (all in one folder) to write them into under their own names.

    When the block ends without an exception, each `folder / target.name` is checked, fsynced and renamed onto
    its target, in the order given (put an index file last: a reader that finds it finds the data too); on
    an exception, or a target not written, nothing is renamed. The folder is removed either way. For writers
    that pick their own file names from a prefix (a TF checkpoint's .index and .data files).
    """
    targets = [_real(t) for t in targets]
    parents = {t.parent for t in targets}
    if len(parents) != 1:
        raise ValueError(f"staging: the files must share one folder, got {sorted(map(str, parents))}")
    parent = parents.pop()
    for target in targets:
        if target.is_dir():
            raise IsADirectoryError(f"{target} is a folder, not a file: name a file to write")
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{targets[0].name}.", suffix=".tmp", dir=parent))
    try:
        yield folder
        for target in targets:
            written = folder / target.name
            if not written.is_file():
                raise FileNotFoundError(f"{target}: the writer left no file {written.name} to put in place")
            _fsync(written)
            _keep_mode(written, target)
        for target in targets:
            os.replace(folder / target.name, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def writing_files(targets: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for files that belong together, renamed onto their targets only if the block succeeds."""
    with staging(targets) as folder:
        yield [folder / _real(t).name for t in targets]


@contextlib.contextmanager
def writing(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path (with the target's own name and suffix) to write to; renamed onto `target` when the
    block succeeds, removed otherwise."""
    with writing_files([target]) as (temporary,):
        yield temporary


@contextlib.contextmanager
def open_for_writing(target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """An open file beside `target` ("w" or "wb"); renamed onto `target` when the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_for_writing: mode must be 'w' or 'wb', got {mode!r}")
    with writing(target) as temporary:
        with open(temporary, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()


def write_text(target: str | os.PathLike, text: str) -> Path:
    with open_for_writing(target, "w") as fh:
        fh.write(text)
    return Path(target)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with open_for_writing(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether `a` and `b` name one file: the same resolved path (links followed), or os.path.samefile."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def refuse_same_file(source: str | os.PathLike | Sequence[str | os.PathLike],
                     target: str | os.PathLike | Sequence[str | os.PathLike],
                     what_source: str = "SRC", what_target: str = "-o") -> None:
    """ValueError when any target would overwrite any source (a command never destroys its input)."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    targets = [target] if isinstance(target, (str, os.PathLike)) else list(target)
    for s in sources:
        for t in targets:
            if same_file(s, t):
                raise ValueError(f"{what_target}: {t} is {what_source} itself ({s}); writing it would destroy the "
                                 f"input: name another file")


def cannot_write(path: str | os.PathLike, kind: str = "file") -> str | None:
    """Why `path` could not be written (kind "file") or written into (kind "folder"), asked before any work
    runs, or None: a file must not be a folder, a folder not a file, and the nearest folder that exists above
    it (the rest is made) must be a folder this process can write to."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind: expected 'file' or 'folder', got {kind!r}")
    path = Path(path)
    if kind == "file" and path.is_dir():
        return f"{path} is a folder; expected a file to write"
    if kind == "folder" and path.exists() and not path.is_dir():
        return f"{path} is a file; expected a folder to write into (it is made if missing)"
    above = path if kind == "folder" else path.parent
    while not above.exists() and above != above.parent:  # the nearest folder that exists: made below it
        above = above.parent
    if not above.is_dir():
        return f"cannot write {path}: {above} is a file, not a folder"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"cannot write {path}: {above} is not writable"
    return None
