"""Shared fixtures. Real data tests read ../shared/data and skip, with the reason, when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SKETCHSHOP_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "clothing-small").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SKETCHSHOP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh SKETCHSHOP_DATA_DIR for one test."""
    from sketchshop.config import settings
    d = tmp_path / "var"
    monkeypatch.setenv("SKETCHSHOP_DATA_DIR", str(d))
    monkeypatch.delenv("SKETCHSHOP_DB_URL", raising=False)
    settings.cache_clear()
    yield d
    settings.cache_clear()
