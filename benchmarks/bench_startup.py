"""Start-up time of the command line against importing torch, each in a fresh interpreter, in one run.

Run (prints the table with ratios; rounds are alternated so that machine load hits every command alike):
    uv run python benchmarks/bench_startup.py --rounds 5

or through pytest-benchmark (group ``startup``, the three side by side):
    uv run pytest benchmarks/bench_startup.py --benchmark-only -p no:cacheprovider

Commands: ``python -c "import torch"`` (the floor for anything that builds a model), ``rewardkit --help``
(must not import torch at all) and ``rewardkit list`` (imports torch and the reward modules, none of
open_clip, transformers, torchvision, OpenCV or pandas). Goals on the project's 2-core machine: --help
under 2 s, list under 3 s; the ratio to ``import torch`` is what carries over between machines.
``import torch, torchcodec`` is what a plain import of torchcodec costs (it imports ``torch._dynamo``);
``rewardkit's torchcodec load`` is what a rewardkit process that decodes video pays once before the first
file (``rewardkit.video.io`` loads torchcodec without ``torch._dynamo``). Times assume compiled bytecode (``UV_COMPILE_BYTECODE=1``, as CI
installs); without it every process recompiles torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("rewardkit")
_RUN = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "rewardkit.cli"]

COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "import torch, torchcodec": [sys.executable, "-c", "import torch, torchcodec.decoders"],
    "rewardkit's torchcodec load": [
        sys.executable, "-c", "from rewardkit.video.io import video_backend; video_backend()"  # PyAV without FFmpeg
    ],
    "rewardkit --help": [*_RUN, "--help"],
    "rewardkit list": [*_RUN, "list"],
}


def run(command: list[str]) -> float:
    """Wall time of one run of ``command`` in seconds (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, list[float]]:
    """``rounds`` wall times per command, the commands interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(run(command))
    return times


@pytest.mark.benchmark(group="startup")
@pytest.mark.parametrize("name", list(COMMANDS))
def test_startup(benchmark, name: str) -> None:
    benchmark.pedantic(run, args=(COMMANDS[name],), rounds=3, iterations=1, warmup_rounds=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run(COMMANDS['python -c "import torch"'])  # warm the page cache once, untimed
    times = measure(args.rounds)
    floor = statistics.median(times['python -c "import torch"'])
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'x import torch':>15}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:>9.2f} {min(values):>7.2f} {median / floor:>15.2f}")


if __name__ == "__main__":
    main()
