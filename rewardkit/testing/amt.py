"""A random AMT-S checkpoint in the layout of ``amt-s.pth`` (the file VBench's motion_smoothness loads)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["tiny_motion_smoothness", "write_amt_checkpoint"]


def write_amt_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A randomly initialised full-size AMT-S (2.99 M parameters, 12 MB) saved as ``amt-s.pth`` is saved:
    ``torch.save({"state_dict": ...})`` with the official key names (``feat_encoder.conv1.weight``, ...).
    The architecture is already small, so the fixture keeps it whole; only the weights are random."""
    from rewardkit.rewards.amt import AmtS

    torch.manual_seed(seed)
    state_dict = {key: value.clone() for key, value in AmtS().state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state_dict}, path)
    return path


def tiny_motion_smoothness(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("motion_smoothness", **options)`` on a random AMT-S."""
    return {"weights": str(write_amt_checkpoint(Path(folder) / "amt-s.pth"))}
