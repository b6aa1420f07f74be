"""Every example in the README runs: its Python blocks (model weights swapped for the tiny fixtures, the
only change) and its offline commands."""

import re
import shlex
from pathlib import Path

import pytest

import rewardkit
from rewardkit.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(PYTHON_BLOCKS) >= 2
    assert "uv run rewardkit score examples/videos" in README and "uv run pytest" in README


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_blocks_run(block, monkeypatch, tiny_rewards, tmp_path):
    """Each block runs in a copy of the repository's data folders (it may write runs/ there)."""
    import shutil

    root = Path(__file__).resolve().parent.parent
    for folder in ("examples", "eval", "finetune", "leaderboards"):
        shutil.copytree(root / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    real_create = rewardkit.create_reward

    def create_with_tiny_weights(name, **options):
        return real_create(name, **{**options, **tiny_rewards.get(name, {})})

    monkeypatch.setattr(rewardkit, "create_reward", create_with_tiny_weights)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize(
    "command",
    [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("uv run rewardkit score examples/videos")],
)
def test_offline_commands_run(command, tmp_path, monkeypatch, capsys):
    arguments = shlex.split(command)[3:]  # drop "uv run rewardkit"
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    arguments = [str(tmp_path / a) if a.startswith("results.") else a for a in arguments]
    assert main([*arguments, "--no-progress"]) == 0
    assert "temporal_flickering" in capsys.readouterr().out


def test_evaluation_commands_run_in_order(tmp_path, monkeypatch, capsys):
    """The README's evaluation block, run top to bottom in a copy of the repository's data folders."""
    import shutil

    block = README.split("## Evaluation", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    root = Path(__file__).resolve().parent.parent
    for folder in ("examples", "eval", "leaderboards"):
        shutil.copytree(root / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("uv run rewardkit")]
    assert len(commands) == 4
    for command in commands:
        arguments = shlex.split(command)[3:]
        if arguments[0] == "eval":
            arguments += ["--no-progress", "--workers", "0"]
        assert main(arguments) == 0, command
    assert (tmp_path / "leaderboards" / "quick.csv").is_file() and (tmp_path / "leaderboards" / "vbench.html").is_file()
    assert "rewardkit regress: PASS" in capsys.readouterr().out
