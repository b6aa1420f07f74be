"""Real multi-process runs from tests: `torchrun` on a loopback port that is free right now.

Ports derived from the process id collide across xdist workers and with sockets other programs hold; the
kernel's choice of a free port (bind to port 0) does not.
"""

from __future__ import annotations

import socket
import sys


def free_port() -> int:
    """A loopback TCP port no socket holds at the moment of the call."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*arguments: str, processes: int = 2) -> list[str]:
    """The command line of `torchrun --nproc_per_node processes` (one node, loopback rendezvous) running
    `python -m rewardkit.cli arguments...`."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), "-m", "rewardkit.cli", *arguments]
