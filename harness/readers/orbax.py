"""Orbax checkpoint folders (orbax.checkpoint's StandardCheckpointer / PyTreeCheckpointer / CheckpointManager
items) of Flax parameters: restored without a target, as plain arrays (the tree Orbax's own metadata
describes), then read as flax_msgpack reads a tree. Orbax stores arrays with tensorstore and its metadata as
JSON: nothing is unpickled.

A CheckpointManager's root folder holds one folder per step: SRC names one step's item folder
(ckpts/100/default), and the error for the root says which is newest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from . import Source
from .flax_msgpack import plain_tree, tree_source

MARKERS = ("_CHECKPOINT_METADATA", "_METADATA", "manifest.ocdbt")


def handles(path: Path) -> bool:
    return path.is_dir() and (any((path / m).exists() for m in MARKERS) or bool(_steps(path)))


def _steps(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()
                   and any(any((item / m).exists() for m in MARKERS) for item in [p, *p.iterdir()] if item.is_dir())),
                  key=lambda p: int(p.name))


def read(path: Path, family: str, select, what: str = "SRC") -> Source:
    if not any((path / m).exists() for m in MARKERS):
        newest = _steps(path)[-1]
        items = [p for p in newest.iterdir() if p.is_dir() and any((p / m).exists() for m in MARKERS)]
        example = items[0] if items else newest
        raise ValueError(f"{what}: {path} is an Orbax CheckpointManager folder of steps "
                         f"{[p.name for p in _steps(path)]}: name one step's item folder, e.g. {example}")
    import orbax.checkpoint as ocp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sharding taken from the saved metadata: the CPU here
        try:
            tree = ocp.StandardCheckpointer().restore(path.resolve())
        except Exception as exc:
            raise ValueError(f"{what}: {path} could not be restored as an Orbax checkpoint: "
                             f"{type(exc).__name__}: {exc}") from exc
    return tree_source(plain_tree(tree), "Orbax checkpoint", family, select, what)
