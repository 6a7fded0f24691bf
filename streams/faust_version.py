"""The faust-streaming versions the worker's Faust subclasses were checked against, and the check at start.

Faust is not imported here: the worker runs `check_faust_version` before any of Faust's modules, so that an
untested version is one clear line, not an ImportError from `streams/faust_app.py`.
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import Optional

# From TESTED_FROM up to, not including, TESTED_BELOW. pyproject.toml pins the same range (a test compares them).
TESTED_FROM, TESTED_BELOW = (0, 15, 3), (0, 16)
TESTED_RANGE = f">={'.'.join(map(str, TESTED_FROM))},<{'.'.join(map(str, TESTED_BELOW))}"  # as pip writes it


class UntestedFaustVersion(RuntimeError):
    """The installed faust-streaming is not a version the worker was tested with (one line for the operator)."""


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: '0.15.3' -> (0, 15, 3), '0.16.0rc1' -> (0, 16, 0)."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d*", part).group()
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def check_faust_version(installed: Optional[str] = None) -> None:
    """Refuse to start on a faust-streaming outside the tested range (the methods we override may have moved)."""
    if installed is None:
        try:
            installed = metadata.version("faust-streaming")
        except metadata.PackageNotFoundError:
            raise UntestedFaustVersion(f"faust-streaming is not installed; install faust-streaming{TESTED_RANGE}") \
                from None
    if not TESTED_FROM <= _release(installed) < TESTED_BELOW:
        raise UntestedFaustVersion(
            f"faust-streaming {installed} is installed, but this worker is tested with faust-streaming"
            f"{TESTED_RANGE} (it overrides Faust methods listed in docs/faust.md); install a tested version")
