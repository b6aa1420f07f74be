"""Offline setup: ../conftest.py. The tiny-checkpoint fixtures come from the rewardkit pytest plugin
(rewardkit.testing.plugin, loaded through its ``pytest11`` entry point)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The slow step's longest test files, longest first (from `.ci/run`'s --durations). The slow step runs with
# `-n auto --dist loadfile --no-loadscope-reorder`: pytest-xdist then hands out whole files in collection
# order, so these start first on the two workers and the short files fill in around them. (By default
# xdist orders files by their number of tests, which handed the README's top-to-bottom run, one test of
# ~4 minutes, out last, to run alone at the end.)
LONGEST_FIRST = ("parity/test_hpsv2_parity.py", "parity/test_imagereward_parity.py", "test_readme.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(here).as_posix() if item.path.is_relative_to(here) else ""
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the other files keep their order


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
