"""Fixtures: tiny random-weight checkpoints in the official layouts (offline setup: ../conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
def aesthetic_heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both aesthetic heads in their official layouts, sized for the tiny open_clip backbone (embed 32)."""
    from rewardkit.testing import TINY_OPEN_CLIP, write_aesthetic_head

    folder = tmp_path_factory.mktemp("aesthetic")
    width = TINY_OPEN_CLIP["embed_dim"]
    return {
        "laion": write_aesthetic_head(folder / "sac+logos+ava1-l14-linearMSE.pth", "laion", embed_dim=width),
        "vbench": write_aesthetic_head(folder / "sa_0_4_vit_l_14_linear.pth", "vbench", embed_dim=width),
    }


@pytest.fixture(scope="session")
def tiny_rewards(hps_checkpoint, clip_checkpoint, pickscore_folders, tiny_clip_config, aesthetic_heads):
    """create_reward arguments for every model reward, pointing at the tiny checkpoints."""
    model_dir, processor_dir = pickscore_folders
    return {
        "hpsv2": {"weights": str(hps_checkpoint), "architecture": str(tiny_clip_config)},
        "clip": {"weights": str(clip_checkpoint), "architecture": str(tiny_clip_config)},
        "pickscore": {"weights": {"model": str(model_dir), "processor": str(processor_dir)}},
        "aesthetic": {
            "weights": {"head": str(aesthetic_heads["laion"]), "backbone": str(clip_checkpoint)},
            "architecture": str(tiny_clip_config),
        },
    }
