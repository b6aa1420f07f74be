"""A random UMT checkpoint in the layout of VBench's ``l16_ptk710_ftk710_ftk400_f16_res224.pth`` (a flat state
dict of float16 tensors without ``pos_embed``) and a class list in the format of its
``kinetics_400_categories.txt`` (``name<TAB>index`` per line), for VBench's human_action."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["tiny_human_action", "write_kinetics_classes", "write_umt_checkpoint"]


def write_umt_checkpoint(
    path: str | os.PathLike[str],
    *,
    width: int = 64,
    depth: int = 2,
    classes: int = 400,
    seed: int = 0,
    logit_std: float = 3.0,
    pos_embed: bool = False,
) -> Path:
    """A UMT of the given width (heads = width / 64), depth and class count with random weights, saved as the
    published file is: ``torch.save(state_dict)`` with UMT's key names, float16. Weights are drawn at unit gain
    (``randn / sqrt(fan_in)``, norms near 1, biases near 0) and the head so the logits spread with std about
    ``logit_std``, so that some classes clear VBench's 0.85 and the top-5 rule has something to decide.
    ``pos_embed=True`` adds a random ``pos_embed`` (the published file has none)."""
    from rewardkit.rewards.umt import UmtClassifier

    generator = torch.Generator().manual_seed(seed)
    model = UmtClassifier(width=width, depth=depth, hidden=4 * width, classes=classes)
    state = {}
    for key, value in model.state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if "norm" in key and key.endswith("weight"):
            state[key] = 1 + 0.1 * noise
        elif key.endswith("weight"):
            fan_in = value[0].numel()
            state[key] = noise * ((logit_std if key == "head.weight" else 1.0) / fan_in**0.5)
        else:  # biases, q_bias, v_bias
            state[key] = 0.1 * noise
    if pos_embed:
        state["pos_embed"] = torch.randn(model.pos_embed.shape, generator=generator)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.half() for key, value in state.items()}, path)
    return path


def write_kinetics_classes(path: str | os.PathLike[str], names: Sequence[str] | int = 400) -> Path:
    """``names`` (or that many ``"action N"``) as ``name<TAB>index`` lines, VBench's class-list format."""
    names = [f"action {index}" for index in range(names)] if isinstance(names, int) else list(names)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\t{index}\n" for index, name in enumerate(names)), encoding="utf-8")
    return path


def tiny_human_action(folder: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``create_reward("human_action", **options)`` on a random 64-wide, 1-block UMT with 400 made-up classes."""
    folder = Path(folder)
    return {"weights": {
        "model": str(write_umt_checkpoint(folder / "l16_ptk710_ftk710_ftk400_f16_res224.pth", depth=1)),
        "classes": str(write_kinetics_classes(folder / "kinetics_400_categories.txt")),
    }}
