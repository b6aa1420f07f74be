"""Start-up and packaging: lazy registration, deferred heavy imports, extras named when missing, third-party
rewards through entry points, devices that are not there, fail-fast without network, and which errors the
command line reports as usage errors."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rewardkit.rewards
from rewardkit import network
from rewardkit.cli import build_parser, main
from rewardkit.errors import MissingDependencyError, UserInputError
from rewardkit.lazy import lazy_import
from rewardkit.registry import BUILTIN_REWARDS, ENTRY_POINT_GROUP, create_reward, list_rewards
from rewardkit.weights import MissingWeightsError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "videos"
HEAVY = ("open_clip", "transformers", "cv2", "pandas", "diffusers", "torchvision", "av")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """A fresh interpreter (nothing imported yet), with the tests' offline environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
        env={**os.environ, **env}, cwd=ROOT,
    )


def test_builtin_table_names_the_module_that_registers_each_reward():
    """Against the modules themselves: import every module of rewardkit.rewards and collect who registered
    what (the factory's module); the lazy table must say exactly that."""
    for module in pkgutil.iter_modules(rewardkit.rewards.__path__):
        importlib.import_module(f"rewardkit.rewards.{module.name}")
    registered = {info.name: info.factory.__module__ for info in list_rewards() if info.name in BUILTIN_REWARDS}
    assert registered == BUILTIN_REWARDS
    assert {info.name for info in list_rewards()} >= set(BUILTIN_REWARDS)


def test_help_imports_no_torch_and_list_no_heavy_package():
    """Checked in a fresh interpreter through sys.modules: `--help` builds the parser without torch (and so
    without a CUDA probe); `list` may import torch but none of the heavy packages."""
    result = run_python(f"""
        import sys
        from rewardkit.cli import build_parser
        build_parser().format_help()
        print("help", sorted(m for m in {("torch",) + HEAVY!r} if m in sys.modules))
        from rewardkit.cli import main
        main(["list", "--format", "csv"])
        print("list", sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "help []" and lines[-1] == "list []"
    assert len(lines) - 3 == len(BUILTIN_REWARDS)  # the header, then one row per reward


def test_third_party_reward_from_an_entry_point(tmp_path):
    """A real installed distribution (a .dist-info folder with entry_points.txt on sys.path, as pip writes
    it) whose module registers a reward: it is listed, created, and suggested for a misspelling."""
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        import torch
        from rewardkit.registry import register_reward

        class Brightness(torch.nn.Module):
            def forward(self, images, prompts=None):
                return images.float().mean(dim=(1, 2, 3))

        @register_reward("my_brightness", modality="image", needs_prompt=False, differentiable=True,
                         description="mean pixel value")
        def create(*, device, dtype, weights):
            return Brightness()
    """))
    info = tmp_path / "my_rewards-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-rewards\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nmy_brightness = my_rewards\n")
    result = run_python("""
        import torch
        from rewardkit import create_reward
        from rewardkit.cli import main
        main(["list", "--format", "csv"])
        reward = create_reward("my_brightness")
        print("score", float(reward(torch.full((1, 3, 4, 4), 0.25))[0]))
        try:
            create_reward("my_brightnes")
        except ValueError as error:
            print("error", error)
    """, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert result.returncode == 0, result.stderr
    assert "my_brightness,image,no,yes,none (weight-free)" in result.stdout
    assert "score 0.25" in result.stdout  # the mean of a constant 0.25 image
    assert "Did you mean 'my_brightness'?" in result.stdout


def test_missing_extra_is_named_when_the_reward_is_created(monkeypatch, capsys):
    """The flow metrics' OpenCV stands in for a package that is not installed (as on a base install)."""
    import rewardkit.rewards.motion as motion

    monkeypatch.setattr(motion, "cv2", lazy_import("cv2_absent_in_this_test", extra="eval"))
    with pytest.raises(MissingDependencyError, match=r'pip install "rewardkit\[eval\]"'):
        create_reward("dynamic_degree_flow")
    # `score` without --reward leaves such metrics out with a note and scores the others.
    assert main(["score", str(EXAMPLES), "--no-progress", "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert "note: left out dynamic_degree_flow" in captured.err and "rewardkit[eval]" in captured.err
    assert "temporal_flickering" in captured.out and "dynamic_degree_flow" not in captured.out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("reward", ["temporal_flickering", "hpsv2"])
def test_device_cuda_without_a_gpu_is_one_line_exit_2(reward, capsys, hps_checkpoint):
    code = main(["score", str(EXAMPLES), "--reward", reward, "--device", "cuda", "--weights", str(hps_checkpoint),
                 "--no-progress"] if reward == "hpsv2" else ["score", str(EXAMPLES), "--reward", reward, "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no CUDA GPU" in err, err
    with pytest.raises(UserInputError, match="no CUDA GPU"):
        create_reward("temporal_flickering", device="cuda")
    assert main(["eval", str(ROOT / "eval" / "quick.toml"), "--videos", str(EXAMPLES), "--device", "cuda"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_missing_weights_fail_at_once_without_network(monkeypatch, empty_caches):
    """Not offline, nothing cached, and the network guard refuses connections (as a machine without network
    does): the error comes from the connect check, and the Hub client is never asked to download."""
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    real_download = huggingface_hub.hf_hub_download
    downloads = []

    def recording_download(*args, local_files_only=False, **kwargs):
        if not local_files_only:
            downloads.append(args)
        return real_download(*args, local_files_only=local_files_only, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording_download)
    with pytest.raises(MissingWeightsError, match=r"(?s)huggingface.co:443 did not answer.*rewardkit download hpsv2"):
        create_reward("hpsv2")
    assert downloads == []
    assert network.unreachable_reason("file:///tmp/x.pth") is None  # only HTTP hosts are checked


def test_only_user_input_errors_are_usage_errors(monkeypatch):
    """A ValueError from inside rewardkit is a bug: it keeps its traceback instead of becoming exit 2."""
    import rewardkit.scoring

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(rewardkit.scoring, "score", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["score", str(EXAMPLES), "--reward", "temporal_flickering", "--device", "cpu"])
    assert main(["score", str(EXAMPLES), "--reward", "temporal_flickering:mode=nonsense"]) == 2


def _subparsers(parser: argparse.ArgumentParser, path: str = "rewardkit"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, f"{path} {name}")


def test_every_help_page_has_a_description_and_an_example():
    pages = dict(_subparsers(build_parser()))
    assert {"rewardkit list", "rewardkit download", "rewardkit env", "rewardkit leaderboard add"} <= set(pages)
    for path, parser in pages.items():
        text = parser.format_help()
        assert "example" in text and parser.description, path
        for action in parser._actions:
            if action.option_strings or action.dest not in ("command", "action"):
                assert action.help, f"{path} {action.option_strings or action.dest} has no help text"
    assert "exit codes:" in pages["rewardkit score"].format_help() and "130" in pages["rewardkit score"].format_help()


def test_score_without_out_prints_per_file_scores(capsys):
    """Without --out the per-file scores are the output: one line per file, checked against rewardkit.score."""
    import rewardkit

    assert main(["score", str(EXAMPLES), "--reward", "temporal_flickering", "--no-progress", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    expected = rewardkit.score(str(EXAMPLES), rewards=["temporal_flickering"], progress=False, workers=0)
    for row in expected.itertuples():
        line = next(line for line in out.splitlines() if line.startswith(row.path))
        assert (f"{row.score:.4f}" if row.status == "ok" else row.status) in line
    assert json.loads(expected["options"].iloc[0])  # the summary below it keeps the options column
