"""Every example in the README runs, top to bottom, in a fresh folder, as a new user would copy them.

The folder holds what a clone has (examples/, eval/, finetune/, leaderboards/) plus stand-ins for the
user's own files that the commands name (videos/, images/, clip.mp4, prompts.csv, clips.csv: copies of
the example clips). `uv run rewardkit ...` lines run through ``rewardkit.cli.main``; Python blocks run with ``exec``
in one namespace each. An example that needs real weights cannot run here: it must fail with exit 2 (or
MissingWeightsError) and the advice in ``NEEDS_WEIGHTS``; Python blocks of that kind then run again with
the tiny random-weight checkpoints in the official formats swapped in, so their code is exercised too.
"""

from __future__ import annotations

import csv
import re
import shlex
import shutil
from pathlib import Path

import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.weights import MissingWeightsError

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, flags=re.S)

# Lines of bash blocks that are not rewardkit examples, with the reason they are not run here.
NOT_RUN = {
    "uv run pytest": "the test suite itself",
    "uv run --group parity pytest": "the slow/parity test step",
    "uv sync --group parity": "installs packages",
    "uv run python benchmarks/": "a benchmark (full size)",
    "uvx --with tox-uv tox": "the test suite through tox",
    "uv run accelerate launch": "needs several GPUs",
    "uv run torchrun": "several processes (tests/test_distributed_score.py runs two gloo processes)",
}
# Examples that need real weights or a real base model: a piece of the command -> text its error must hold.
NEEDS_WEIGHTS = {
    "--reward hpsv2 --reward pickscore": "rewardkit download hpsv2",
    "--reward hpsv2:version=v2.0": "HPS_v2_compressed.pt",
    "--weights clip=/models/open_clip_model.safetensors": "/models/open_clip_model.safetensors",
    "aesthetic.backbone=/models/open_clip_model.safetensors": "/models/open_clip_model.safetensors",
    "patch:base=hpsv2": "rewardkit download",
    "instructvideo-modelscope.toml": "ali-vilab/text-to-video-ms-1.7b",
    'create_reward("hpsv2"': "rewardkit download hpsv2",
}


def commands(block: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def expected_error(text: str) -> str | None:
    return next((message for piece, message in NEEDS_WEIGHTS.items() if piece in text), None)


def test_every_bash_line_is_run_or_explained():
    for language, block in BLOCKS:
        if language == "bash":
            for line in commands(block):
                assert line.startswith("uv run rewardkit ") or any(line.startswith(p) for p in NOT_RUN), line


def fresh_folder(path: Path) -> None:
    """What a clone holds, plus the user's own inputs that the examples name, stood in for by the examples."""
    for folder in ("examples", "eval", "finetune", "leaderboards"):
        shutil.copytree(ROOT / folder, path / folder)
    videos = path / "examples" / "videos"
    shutil.copytree(videos, path / "videos")
    (path / "images").mkdir()
    shutil.copy(videos / "a still image of a yellow triangle.png", path / "images")
    shutil.copy(videos / "a red circle moving from left to right on a blue background-0.mp4", path / "clip.mp4")
    with open(path / "prompts.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "prompt"])
        for video in sorted((path / "videos").glob("*.mp4")):
            writer.writerow([f"videos/{video.name}", video.stem.rsplit("-", 1)[0]])
    shutil.copy(path / "prompts.csv", path / "clips.csv")  # fine-tuning data: the same path,prompt table


def run_command(command: str, capsys) -> str:
    arguments = shlex.split(command)[3:]  # drop "uv run rewardkit"
    if arguments[0] in ("score", "eval"):
        arguments += ["--no-progress", "--workers", "0"]
    code = main(arguments)
    out, err = capsys.readouterr()
    if arguments[0] == "finetune":  # for a user each command is a process: accelerate keeps one state per process
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    message = expected_error(command)
    if message is None:
        assert code == 0, f"{command}\n{err}"
    else:
        assert code == 2 and message in err, f"{command}\n{err}"
    return out


def run_python(block: str, tiny_rewards) -> None:
    message = expected_error(block)
    if message is not None:
        with pytest.raises(MissingWeightsError, match=re.escape(message)):
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
        real_create = rewardkit.create_reward
        try:  # the same block with the tiny checkpoints in the official formats
            rewardkit.create_reward = lambda name, **options: real_create(name, **{**options, **tiny_rewards.get(name, {})})
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
        finally:
            rewardkit.create_reward = real_create
    else:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


QUICK_START = "uv run rewardkit score examples/videos"
QUICK_START_OUTPUT = README.split("summary line per reward:\n\n```\n", 1)[1].split("```", 1)[0]


def test_quick_start_prints_what_the_readme_shows(monkeypatch, capsys):
    """The README's first command, in the checkout: its output is the block the README shows."""
    monkeypatch.chdir(ROOT)
    assert run_command(QUICK_START, capsys) == QUICK_START_OUTPUT


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path, monkeypatch, capsys, tiny_rewards):
    fresh_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for language, block in BLOCKS:
        if language == "python":
            run_python(block, tiny_rewards)
            continue
        for command in commands(block):
            if command.startswith("uv run rewardkit "):
                outputs[command] = run_command(command, capsys)
    assert outputs[QUICK_START] == QUICK_START_OUTPUT  # the output shown is the output
    assert "rewardkit regress: PASS" in outputs[next(c for c in outputs if " regress " in c)]
    assert (tmp_path / "leaderboards" / "quick.csv").is_file() and (tmp_path / "leaderboards" / "vbench.html").is_file()
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "runs" / "smoke-python" / "lora").is_dir()


def test_gitignore_covers_what_the_examples_write(tmp_path):
    """The files the README's commands write in the checkout are ignored (read from .gitignore's patterns)."""
    patterns = (ROOT / ".gitignore").read_text().splitlines()
    for written in ("/runs/", "/leaderboards/quick.csv", "/results*.csv", "/results*.parquet", "/patches.csv"):
        assert written in patterns
