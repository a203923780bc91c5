"""Docs fixtures: the site, built once per session the way ``make docs`` builds it (strict)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` into a temporary directory; skipped when mkdocs is not installed."""
    pytest.importorskip("mkdocstrings", reason="the docs extra (mkdocs, mkdocstrings[python]) is not installed")
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"make docs would fail:\n{done.stderr[-5000:]}"
    return site
