"""The file readers never unpickle (harness.files, CanonicalLSTM.load): a payload whose unpickling would leave a
marker file is refused, and the marker never appears; pickle suffixes are refused before anything is read.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness import files
from harness.canonical import CanonicalLSTM
from harness.spec import LSTMSpec

SPEC = LSTMSpec(input_size=2, hidden_size=3)


class Payload:
    """Unpickling this creates `marker`: the proof that something unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def object_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    return arr


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "unpickled-here"


def test_the_payload_does_run_when_unpickled(tmp_path, marker):
    """The proof is live: numpy with allow_pickle=True runs it (so its absence below means something)."""
    np.savez(tmp_path / "evil.npz", weight=object_array(marker))
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as data:
        data["weight"]
    assert marker.exists()


@pytest.mark.parametrize("backend", ["torch", "keras", "jax", "flax"])
def test_an_npz_holding_a_pickled_object_array_is_refused_unrun(tmp_path, marker, backend):
    src = tmp_path / "evil.npz"
    np.savez(src, weight_ih_l0=np.zeros((12, 2), np.float32), weight=object_array(marker))
    with pytest.raises(ValueError, match=r"SRC: .*evil\.npz could not be read as \.npz"):
        files.read(backend, src, SPEC)
    assert not marker.exists()


def test_a_canonical_npz_holding_a_pickled_object_array_is_refused_unrun(tmp_path, marker):
    good = CanonicalLSTM.random(SPEC).save(tmp_path / "good.npz")
    with np.load(good) as data:
        arrays = dict(data)
    np.savez(tmp_path / "evil.npz", **arrays, extra=object_array(marker))
    with pytest.raises(ValueError, match="could not be read as a canonical file"):
        files.read("numpy", tmp_path / "evil.npz", None)
    with pytest.raises(ValueError):
        CanonicalLSTM.load(tmp_path / "evil.npz")
    assert not marker.exists()
    assert files.read("numpy", good, None) == CanonicalLSTM.random(SPEC)  # the reader itself works


def test_an_npy_holding_a_pickled_object_array_is_refused_unrun(tmp_path, marker):
    np.save(tmp_path / "evil.npy", object_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match="could not be read as .npy"):
        files.read("jax-cudnn", tmp_path / "evil.npy", SPEC)
    assert not marker.exists()
    np.save(tmp_path / "good.npy", np.arange(3.0))
    np.testing.assert_array_equal(files.read("jax-cudnn", tmp_path / "good.npy", SPEC), np.arange(3.0))


def test_a_pickle_named_npz_is_refused_unrun(tmp_path, marker):
    src = tmp_path / "state.npz"
    src.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="not a zip archive"):
        files.read("torch", src, SPEC)
    assert not marker.exists()


def test_arrays_come_back_as_written(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4)}
    np.savez(tmp_path / "x.npz", **arrays)
    from safetensors.numpy import save_file

    save_file(arrays, str(tmp_path / "x.safetensors"))
    for name in ("x.npz", "x.safetensors"):
        got = files.read("torch", tmp_path / name, SPEC)
        assert sorted(got) == ["a", "b"]
        for k in arrays:
            np.testing.assert_array_equal(got[k], arrays[k])
            assert got[k].dtype == arrays[k].dtype
    with zipfile.ZipFile(tmp_path / "x.npz") as z:
        assert sorted(z.namelist()) == ["a.npy", "b.npy"]


def test_a_bfloat16_safetensors_file_says_how_to_save_it(tmp_path):
    import json
    import struct

    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\x40")
    try:
        np.dtype("bfloat16")  # registered by ml_dtypes once a framework that uses it is imported
    except TypeError:
        with pytest.raises(ValueError, match=r"numpy holds no bfloat16: save the tensors as float32"):
            files.read("torch", tmp_path / "bf16.safetensors", SPEC)
    else:
        assert files.read("torch", tmp_path / "bf16.safetensors", SPEC)["w"].astype(np.float32).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("suffix", files.PICKLES + (".PT", ".Pkl"))
def test_every_pickle_suffix_is_refused_before_reading(tmp_path, marker, suffix):
    """A torch.save suffix is sent to --from torch (torch's weights-only loader, harness.readers); any other
    pickle is refused with how to save the weights instead; no pickle is ever written."""
    src = tmp_path / f"model{suffix}"
    src.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError) as info:
        files._refuse_pickle(src, "SRC")
    if suffix.lower() in files.TORCH_SAVE:
        assert f"SRC: model{suffix} is a torch.save file ({suffix}): read it with --from torch" in str(info.value)
    else:
        assert f"SRC: model{suffix} is a pickle file ({suffix}); unpickling runs arbitrary code, so this command " \
               "never reads one. Save the weights as safetensors where they were made" in str(info.value)
    with pytest.raises(ValueError, match=r"would be a pickle file .* never writes: write \.safetensors instead"):
        files._refuse_pickle(src, "-o")
    if suffix.lower() != ".ckpt":  # a .ckpt may be a TF checkpoint prefix (tf1 reads it, with no unpickling)
        with pytest.raises(ValueError, match="pickle file|torch.save file"):
            files.read("keras", src, SPEC)
        with pytest.raises(ValueError, match="would be a pickle file"):
            files.output_form("torch", src)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.npz", "model.safetensors", "model.onnx", "model", "model.pt.npz"])
def test_other_suffixes_pass_the_pickle_guard(tmp_path, name):
    assert files._refuse_pickle(tmp_path / name, "SRC") is None
