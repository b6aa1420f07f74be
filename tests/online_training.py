"""The trainer's inner sequence for the online objectives' tests, in one place."""

from __future__ import annotations

import numpy as np
import torch


def train_recording_rewards(
    objective, parameters, learning_rate: float, steps: int, prompts: list[str], tie_rewards: bool = False
) -> list[float]:
    """``steps`` rounds of the trainer's sequence (rollout -> micro-batches -> backward -> one AdamW step),
    seeded per step; returns each step's mean reward of its fresh rollout (taken before that step's update).
    ``tie_rewards`` (for RWR, which weights by reward in its loss; its rollout names them "reward"): train as
    if every rollout had scored the same, a control that trains on its own samples but cannot learn the reward.
    At learning rate 0 (the learning checks' control) only the rollouts run: AdamW at learning rate 0 and
    weight decay 0 leaves every parameter as it is, so the loss and backward would change nothing, and the
    loss draws from the step's own generators, which no later rollout uses (each step seeds new ones)."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    history = []
    for step in range(steps):
        generator, rng = torch.Generator().manual_seed(step), np.random.default_rng(step)
        batch = objective.rollout({"prompts": prompts}, generator, rng)
        key = "rewards" if "rewards" in batch else "reward"
        history.append(batch[key].mean().item())
        if learning_rate == 0:
            continue
        if tie_rewards:
            batch[key] = torch.zeros_like(batch[key])
        parts = objective.micro_batches(batch)
        for part in parts:
            loss, _ = objective.loss(part, generator, rng)
            (loss / len(parts)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return history
