"""pytest plugin (entry point ``pytest11: rewardkit``): the tiny random-weight checkpoints as session
fixtures, so a test suite can build every rewardkit reward offline through the path a user's download takes.

Fixtures: ``tiny_clip_config``, ``hps_checkpoint``, ``clip_checkpoint``, ``pickscore_folders``,
``aesthetic_heads``, ``tiny_rewards`` (``create_reward`` arguments for the open_clip family) and
``tiny_reward_options`` (``create_reward`` arguments of any registered reward, see
``rewardkit.testing.TINY_REWARDS``). Loading the plugin imports nothing heavy; each fixture imports its
writer when first used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An open_clip JSON config of ViT-H-14's structure, a few layers deep (``architecture=`` takes it)."""
    from rewardkit.testing.clip import write_open_clip_config

    return write_open_clip_config(tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="session")
def hps_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_clip_config: Path) -> Path:
    """A tiny HPS v2 checkpoint in the published format (``{"state_dict": ...}``, fp16)."""
    from rewardkit.testing.clip import write_hps_checkpoint

    return write_hps_checkpoint(tmp_path_factory.mktemp("hps") / "HPS_v2.1_compressed.pt", str(tiny_clip_config))


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_clip_config: Path) -> Path:
    """A tiny open_clip ``open_clip_model.safetensors``."""
    from rewardkit.testing.clip import write_open_clip_safetensors

    return write_open_clip_safetensors(tmp_path_factory.mktemp("clip") / "open_clip_model.safetensors", str(tiny_clip_config))


@pytest.fixture(scope="session")
def pickscore_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny PickScore_v1 model folder and its processor folder."""
    from rewardkit.testing.clip import write_pickscore_folders

    return write_pickscore_folders(tmp_path_factory.mktemp("pickscore"))


@pytest.fixture(scope="session")
def aesthetic_heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both aesthetic heads in their official layouts, sized for the tiny open_clip backbone (embed 32)."""
    from rewardkit.testing.clip import TINY_OPEN_CLIP, write_aesthetic_head

    folder = tmp_path_factory.mktemp("aesthetic")
    width = TINY_OPEN_CLIP["embed_dim"]
    return {
        "laion": write_aesthetic_head(folder / "sac+logos+ava1-l14-linearMSE.pth", "laion", embed_dim=width),
        "vbench": write_aesthetic_head(folder / "sa_0_4_vit_l_14_linear.pth", "vbench", embed_dim=width),
    }


@pytest.fixture(scope="session")
def tiny_rewards(hps_checkpoint, clip_checkpoint, pickscore_folders, tiny_clip_config, aesthetic_heads) -> dict[str, dict[str, Any]]:
    """create_reward arguments for the open_clip-family image rewards, pointing at the tiny checkpoints."""
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


@pytest.fixture(scope="session")
def tiny_reward_options(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """``options(name)``: the ``create_reward`` options of reward ``name`` on its tiny files (written once
    per session; see ``rewardkit.testing.TINY_REWARDS``)."""
    from rewardkit import testing

    root = tmp_path_factory.mktemp("tiny-rewards")
    written: dict[str, dict[str, Any]] = {}

    def options(name: str) -> dict[str, Any]:
        if name not in written:
            written[name] = testing.tiny_reward_options(name, root / name)
        return dict(written[name])

    return options
