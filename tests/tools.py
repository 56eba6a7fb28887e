"""System tools some tests need (installed by scripts/install-test-tools): found, or a
loud skip that names what is missing. Never a silent pass."""

from __future__ import annotations

import shutil

import pytest


def require(program: str, package: str) -> str:
    """The path of `program`, or skip the test saying which Debian package would bring it."""
    path = shutil.which(program)
    if path is None:
        pytest.skip(
            f"SKIPPED LOUDLY: {program} is not installed (Debian package {package}; "
            "scripts/install-test-tools installs it as root)"
        )
    return path
