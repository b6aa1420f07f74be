"""Offline setup: ../conftest.py. The tiny-checkpoint fixtures come from the rewardkit pytest plugin
(rewardkit.testing.plugin, loaded through its ``pytest11`` entry point)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hf_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])
