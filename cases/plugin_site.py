"""The example backend package (cases/plugin_example) made importable as pip would install it, without pip.

pip puts the package and a NAME-VERSION.dist-info folder on sys.path; importlib.metadata finds the entry points in
its entry_points.txt. Writing those two by hand, from the example's own pyproject.toml, takes milliseconds where a
real `pip install` takes seconds.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

EXAMPLE = Path(__file__).with_name("plugin_example")


def install_example(site: Path, extra_entry_points: dict[str, str] | None = None) -> Path:
    """Install cases/plugin_example into the folder `site` (put it on sys.path or PYTHONPATH); return `site`.

    extra_entry_points: more `lstm_harness.backends` entries, name -> "module:Class" (a broken one, a clash).
    """
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE / "lstm_harness_example", site / "lstm_harness_example",
                    ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = {group: {**entries} for group, entries in project["entry-points"].items()}
    groups["lstm_harness.backends"].update(extra_entry_points or {})
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
        for group, entries in groups.items()))
    return site
