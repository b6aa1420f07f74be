"""Real multi-process runs from tests: `torchrun` on a loopback port that is free right now.

Ports derived from the process id collide across xdist workers and with sockets other programs hold; the
kernel's choice of a free port (bind to port 0) does not.

Run as a script (what `torchrun_each` launches), it runs each `rewardkit` command line given to it as JSON
in turn, in the processes torchrun started, and exits with the first non-zero status.
"""

from __future__ import annotations

import json
import socket
import sys


def free_port() -> int:
    """A loopback TCP port no socket holds at the moment of the call."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launcher(processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
            "--master_port", str(free_port())]


def torchrun(*arguments: str, processes: int = 2) -> list[str]:
    """The command line of `torchrun --nproc_per_node processes` (one node, loopback rendezvous) running
    `python -m rewardkit.cli arguments...`."""
    return [*_launcher(processes), "-m", "rewardkit.cli", *arguments]


def torchrun_each(commands: list[list[str]], processes: int = 2) -> list[str]:
    """The command line of one such launch whose processes run `rewardkit` with each of ``commands`` in turn
    (one process group for all of them): each launch costs every process its imports of torch, diffusers
    and transformers, several times what a tiny run does. It exits 0 only if every command did."""
    return [*_launcher(processes), __file__, json.dumps(commands)]


if __name__ == "__main__":
    from rewardkit.cli import main

    for arguments in json.loads(sys.argv[1]):
        status = main(arguments)
        if status != 0:
            print(f"tests/distributed.py: `rewardkit {' '.join(arguments)}` exited {status}", file=sys.stderr)
            sys.exit(status)
