"""Offline setup: ../conftest.py. The tiny-checkpoint fixtures come from the rewardkit pytest plugin
(rewardkit.testing.plugin, loaded through its ``pytest11`` entry point)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hf_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): on
    two shared cores, multi-threaded CPU kernels are many times slower than one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """A Hugging Face cache and a rewardkit cache that hold nothing: other tests in the same process (one
    pytest-xdist worker runs many files) fill the shared ones."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "rewardkit"))
