"""Several processes under ``accelerate launch`` or ``torchrun`` (one per GPU; gloo processes on a CPU
machine): which process this is, its share of a list, and gathering everyone's results.

One mechanism for ``rewardkit score`` and ``rewardkit eval``, built on accelerate's
``split_between_processes`` (contiguous shares, so gathered results come back in the input order) and
``gather_object``. A single process (no ``WORLD_SIZE`` above 1) needs neither accelerate nor
``torch.distributed``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rewardkit.errors import UserInputError

__all__ = ["Processes", "processes"]

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    """This process's place among ``world`` processes (``state``: accelerate's, None for one process)."""

    rank: int
    world: int
    local_rank: int
    state: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def split(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items`` (the same list on every process)."""
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)

    def gather(self, items: list[T]) -> list[T]:
        """Every process's ``items``, concatenated in rank order, on every process."""
        if self.state is None:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def device(self, device: str) -> str:
        """``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``) when there are several processes."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.state is not None else device


@functools.cache
def processes() -> Processes:
    """The processes of this run, from the environment ``accelerate launch`` / ``torchrun`` set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return Processes(0, 1, local_rank)
    try:
        from accelerate import PartialState
    except ModuleNotFoundError:
        raise UserInputError("several processes need accelerate: pip install 'rewardkit[train]'") from None
    import torch

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU-only machines: gloo processes
    if state.num_processes != world:
        raise UserInputError(
            f"WORLD_SIZE is {world} but accelerate set up {state.num_processes} process(es); launch with "
            f"`accelerate launch` or `torchrun --nproc_per_node N` so every process takes its own share"
        )
    return Processes(state.process_index, state.num_processes, state.local_process_index, state)
