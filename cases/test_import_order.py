"""harness.import_order: torch is imported the moment TensorFlow first is, and only then (stand-in packages in a
fresh interpreter: the real ones cost seconds to import and are loaded already in this process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
if sys.argv[2] == "no-torch":
    sys.modules["torch"] = None  # import torch raises ImportError, find_spec("torch") is None: not installed
from harness import import_order
import_order.torch_before_tensorflow()
import_order.torch_before_tensorflow()  # twice: still one finder
print("finders", sum(type(f).__name__ == "_TorchFirst" for f in sys.meta_path))
print("after install", sys.modules.get("torch") is not None)
import json  # anything else: torch stays out
print("after json", sys.modules.get("torch") is not None)
import tensorflow
print("tensorflow saw torch", tensorflow.SAW_TORCH)
print("tensorflow is", tensorflow.__file__.startswith(sys.argv[1]))
"""


def fake_packages(tmp_path: Path) -> Path:
    """Stand-ins for tensorflow (it records whether torch was imported before it) and torch, first on the path."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text("import sys\nSAW_TORCH = sys.modules.get('torch') is not None\n")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    return tmp_path


@pytest.mark.parametrize("torch", [True, False], ids=["torch-installed", "no-torch"])
def test_torch_is_imported_when_tensorflow_first_is(tmp_path, torch):
    where = fake_packages(tmp_path)
    env = {"PYTHONPATH": f"{where}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(where), "torch" if torch else "no-torch"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == ["finders 1", "after install False", "after json False",
                                           f"tensorflow saw torch {torch}", "tensorflow is True"]
