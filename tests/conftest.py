from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import COPIER, REPO


@pytest.fixture(scope="session")
def copier() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO / "examples" / "uring-copy")], check=True)
    assert COPIER.is_file()
    return COPIER
