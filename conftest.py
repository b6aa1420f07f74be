"""Run for tests/ and benchmarks/: no network, offline Hugging Face Hub, an empty private cache (one per
pytest run: its xdist workers inherit the controller's, so what one worker writes there, such as the
fitted tiny VAE, the others reuse)."""

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports huggingface_hub (it reads these at import time).
_CACHE_ROOT = Path(os.environ.get("REWARDKIT_TEST_CACHE_ROOT") or tempfile.mkdtemp(prefix="rewardkit-tests-"))
os.environ["REWARDKIT_TEST_CACHE_ROOT"] = str(_CACHE_ROOT)
os.environ["HF_HOME"] = str(_CACHE_ROOT / "hf")
os.environ["HF_HUB_CACHE"] = str(_CACHE_ROOT / "hf" / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["REWARDKIT_CACHE"] = str(_CACHE_ROOT / "rewardkit")


def pytest_configure(config):
    from rewardkit.testing import block_network

    block_network()
    # A pytest-xdist worker (`-n auto`) gets its share of the cores for torch's threads, and so do the
    # processes its tests start: with every worker on every core, each waits on threads that another worker's
    # holds the core of (on this project's 2-core machine, 2 workers of 2 threads ran a conv/matmul loop 10x
    # slower in wall time than 2 workers of 1 thread, under load).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the README's test command): one worker per core, at most 4, since every worker holds
    its own torch and tiny models."""
    return max(1, min(4, os.cpu_count() or 1))
