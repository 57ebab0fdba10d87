"""Which pip extra brings which optional package, so "not installed" can say what to install.

The extras are pyproject.toml's: torch, tf, jax, onnx (and test for the browser test). A message names the extra
only when the package's top-level module is absent: a package that is there but broken needs a repair, not
another install.
"""

from __future__ import annotations

import importlib.util

# top-level module -> the extra(s) that install it
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tf",), "keras": ("tf",),
    "jax": ("jax",), "jaxlib": ("jax",), "flax": ("jax",), "equinox": ("jax",),
    "onnx": ("onnx",), "onnxruntime": ("onnx",), "onnxscript": ("onnx",),
    "ml_dtypes": ("jax", "tf"),  # bfloat16 for numpy: jax and tensorflow both depend on it
    "selenium": ("test",),
}


def command(extra: str) -> str:
    return f"pip install -c constraints.txt -e '.[{extra}]'"


def hint(module: str) -> str:
    """'; install the tf extra: pip install ...' when `module`'s package is absent and an extra brings it, else ''."""
    top = module.split(".")[0]
    extras = EXTRAS.get(top)
    if not extras or _present(top):
        return ""
    return f"; install the {' or '.join(extras)} extra: " + " or ".join(command(e) for e in extras)


def not_installed(module: str, exc: BaseException) -> str:
    """The reason a backend or a test gives when `module` cannot be imported, with the extra to install."""
    missing = getattr(exc, "name", None) or module  # ModuleNotFoundError names the module actually missing
    return f"{module} is not installed ({type(exc).__name__}: {exc}){hint(missing)}"


def _present(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def skip_reason(module: str, why: str = "") -> str:
    """A test's skip reason for a missing `module`: "not installed: onnx; install the onnx extra: ..."."""
    return f"not installed: {module}{f' ({why})' if why else ''}{hint(module)}"
