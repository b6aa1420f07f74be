"""The trainer's inner sequence for the online objectives' tests, in one place."""

from __future__ import annotations

import numpy as np
import torch


def train_recording_rewards(objective, parameters, learning_rate: float, steps: int, prompts: list[str]) -> list[float]:
    """``steps`` rounds of the trainer's sequence (rollout -> micro-batches -> backward -> one AdamW step),
    seeded per step; returns each step's mean reward of its fresh rollout (taken before that step's update)."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    history = []
    for step in range(steps):
        generator, rng = torch.Generator().manual_seed(step), np.random.default_rng(step)
        batch = objective.rollout({"prompts": prompts}, generator, rng)
        history.append(batch["rewards"].mean().item())
        parts = objective.micro_batches(batch)
        for part in parts:
            loss, _ = objective.loss(part, generator, rng)
            (loss / len(parts)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return history
