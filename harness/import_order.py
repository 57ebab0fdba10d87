"""torch before TensorFlow in one process, paid only by processes that load TensorFlow.

Keras's own test suite imports torch first: with TensorFlow loaded first, torch's import has crashed in the
same process on some builds (keras/conftest.py). Importing torch up front costs ~1.3 s of CPU in every process
(measured here, torch 2.13 CPU), also in those that never load TensorFlow: a `pytest --co`, `python -m harness
list`, a pytest-xdist worker that draws no TensorFlow test. `torch_before_tensorflow()` instead puts a finder
first on sys.meta_path that imports torch (where installed) the moment something first asks for tensorflow,
then lets the normal import go on. It never imports anything else and never changes what is found.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


class _TorchFirst(importlib.abc.MetaPathFinder):
    done = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "tensorflow" and not self.done:
            self.done = True  # stays in sys.meta_path (removing it mid-import would skip the next finder)
            if "torch" not in sys.modules and importlib.util.find_spec("torch") is not None:
                import torch  # noqa: F401
        return None  # found by the finders after this one, as always


def torch_before_tensorflow() -> None:
    """Make a later `import tensorflow` import torch first (idempotent; nothing to do once TF is loaded)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _TorchFirst) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchFirst())
