"""Test setup: no network, an empty private Hugging Face cache, and tiny official-layout checkpoints."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub (it reads these at import): a private, empty cache and offline.
_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="rewardkit-tests-"))
os.environ["HF_HOME"] = str(_CACHE_ROOT / "hf")
os.environ["HF_HUB_CACHE"] = str(_CACHE_ROOT / "hf" / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["REWARDKIT_CACHE"] = str(_CACHE_ROOT / "rewardkit")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to open an internet connection."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real):
    def connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkAccessError(f"tests must not open network connections (tried {address!r})")
        return real(self, address, *args, **kwargs)

    return connect


_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        raise NetworkAccessError(f"tests must not resolve host names (tried {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(scope="session")
def hf_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rewardkit.testing import write_open_clip_config

    return write_open_clip_config(tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="session")
def hps_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_clip_config: Path) -> Path:
    from rewardkit.testing import write_hps_checkpoint

    return write_hps_checkpoint(tmp_path_factory.mktemp("hps") / "HPS_v2.1_compressed.pt", str(tiny_clip_config))


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_clip_config: Path) -> Path:
    from rewardkit.testing import write_open_clip_safetensors

    return write_open_clip_safetensors(tmp_path_factory.mktemp("clip") / "open_clip_model.safetensors", str(tiny_clip_config))


@pytest.fixture(scope="session")
def pickscore_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from rewardkit.testing import write_pickscore_folders

    return write_pickscore_folders(tmp_path_factory.mktemp("pickscore"))


@pytest.fixture(scope="session")
def tiny_rewards(hps_checkpoint, clip_checkpoint, pickscore_folders, tiny_clip_config):
    """create_reward arguments for every model reward, pointing at the tiny checkpoints."""
    model_dir, processor_dir = pickscore_folders
    return {
        "hpsv2": {"weights": str(hps_checkpoint), "architecture": str(tiny_clip_config)},
        "clip": {"weights": str(clip_checkpoint), "architecture": str(tiny_clip_config)},
        "pickscore": {"weights": str(model_dir), "processor": str(processor_dir)},
    }
