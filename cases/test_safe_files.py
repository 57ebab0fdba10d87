"""Files are never half-written and never written over their own input (harness/atomic.py), and reading a
file checks its sizes before allocating anything of them."""

from __future__ import annotations

import os

import pytest

from harness import CanonicalLSTM, LSTMSpec, files
from harness.__main__ import main
from harness.cli.convert import USAGE

SPEC = LSTMSpec(input_size=3, hidden_size=4)


def convert(*argv) -> int:
    return main(["convert", *map(str, argv)])


# convert never writes over SRC ------------------------------------------------------------------
@pytest.fixture
def no_reading(monkeypatch):
    """files.read fails the test: the refusal must come before SRC is read."""
    def read(*args, **kwargs):
        raise AssertionError(f"SRC was read: files.read{args}")

    monkeypatch.setattr(files, "read", read)


def _out_is_src(tmp_path, capsys, argv, *untouched):
    before = {p: p.read_bytes() for p in untouched}
    assert convert(*argv) == USAGE
    err = capsys.readouterr().err
    assert "-o: " in err and "is SRC itself" in err and "would destroy the input" in err, err
    assert {p: p.read_bytes() for p in untouched} == before  # byte for byte
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary left


def test_out_that_is_src_is_refused_before_reading(tmp_path, capsys, no_reading, monkeypatch):
    src = CanonicalLSTM.random(SPEC).save(tmp_path / "m.npz")
    _out_is_src(tmp_path, capsys, ["--from", "numpy", src, "--to", "numpy", "-o", src], src)
    # the same file under another spelling: relative, through '..', through a symbolic link, a hard link
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.npz").symlink_to(src)
    os.link(src, tmp_path / "hard.npz")
    for out in ("m.npz", "sub/../m.npz", tmp_path / "link.npz", tmp_path / "hard.npz"):
        _out_is_src(tmp_path, capsys, ["--from", "numpy", src, "--to", "numpy", "-o", out], src)
    _out_is_src(tmp_path, capsys, ["--from", "numpy", tmp_path / "link.npz", "--to", "numpy", "-o", src], src)


def test_a_checkpoint_is_not_written_over_its_own_files(tmp_path, capsys, no_reading):
    """SRC a TF checkpoint (prefix, .index or folder): OUT whose .index/.data files are SRC's is refused. The
    files here are not even a checkpoint: nothing is read before the refusal."""
    folder = tmp_path / "tf"
    folder.mkdir()
    index, data = folder / "model.ckpt.index", folder / "model.ckpt.data-00000-of-00001"
    index.write_bytes(b"an index")
    data.write_bytes(b"the data")
    cell = ["--forget-bias", "1", "--cell-clip", "none", "--proj-clip", "none"]
    for src in (folder / "model.ckpt", index, folder):  # -o folder/model.ckpt names one of the folder's files
        _out_is_src(tmp_path, capsys, ["--from", "tf1", src, *cell, "--to", "tf1", "-o", folder / "model.ckpt"],
                    index, data)


# Sizes are checked before anything of them is allocated -------------------------------------------------
def test_an_eqx_file_is_checked_against_the_spec_before_the_spec_is_built(tmp_path, capsys, monkeypatch):
    """A typo of hidden_size 20000 would build ~13 GB of random weights to compare the file with: the leaf
    headers are compared with the spec first, so the error comes before CanonicalLSTM.random is called."""
    if files.backends.get("equinox").installed():
        pytest.skip(f"not installed: {files.backends.get('equinox').installed()}")
    spec = SPEC.replace(bias="single")
    eqx_file = tmp_path / "m.eqx"
    files.write("equinox", CanonicalLSTM.random(spec), eqx_file, "float32")
    typo = spec.replace(hidden_size=20000)

    def random(*args, **kwargs):
        raise AssertionError("built weights of the spec's size before checking the file")

    monkeypatch.setattr(CanonicalLSTM, "random", random)
    message = (r"SRC: .*m.eqx leaf 0, cells\[0\].weight_ih \(layer=0, direction=forward\): expected shape "
               r"\(80000, 3\) for the 1 equinox.nn.LSTMCell of spec \(input_size=3, hidden_size=20000, "
               r"single bias\), got \(16, 3\)")
    with pytest.raises(ValueError, match=message):
        files.read("equinox", eqx_file, typo)
    spec_json = '{"input_size": 3, "hidden_size": 20000, "bias": "single"}'
    assert convert("--from", "equinox", eqx_file, "--spec", spec_json, "--to", "numpy", "-o", tmp_path / "c.npz") == USAGE
    assert "leaf 0, cells[0].weight_ih" in capsys.readouterr().err
    # a file cut short says so, from the headers alone
    (tmp_path / "cut.eqx").write_bytes(eqx_file.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"cut.eqx is truncated: leaf 2 float32 \(16,\) needs"):
        files.read("equinox", tmp_path / "cut.eqx", spec)
    with pytest.raises(ValueError, match="holds 3 arrays; the 2 equinox.nn.LSTMCell of spec .* hold 6"):
        files.read("equinox", eqx_file, spec.replace(bidirectional=True))
