"""Skip a test whose backends' frameworks are not installed, saying so (the project's skip-reason prefix)."""

from __future__ import annotations

import pytest

from harness import backends


def needs(*names: str) -> None:
    for name in names:
        reason = backends.get(name).installed()
        if reason:
            pytest.skip(f"not installed: {reason}")
