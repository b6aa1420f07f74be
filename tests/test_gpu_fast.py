"""Issue 13 §3, the GPU fast path, tested on the CPU: preprocessing shared between rewards whose transforms
agree, ``batch_size="auto"`` (the CPU memory rule and the out-of-memory back-off), ``compile_models`` and
the CLI options. Each test says what it compares against."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import rewardkit
from rewardkit.cli import main
from rewardkit.scoring import engine
from rewardkit.scoring.engine import AUTO_BATCH_FRAMES, auto_batch_frames

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = "examples/prompts.csv"


def _specs(tiny_rewards, names):
    specs, weights = [], {}
    for name in names:
        options = tiny_rewards[name]
        specs.append(name + (f":architecture={options['architecture']}" if "architecture" in options else ""))
        weights[name] = options["weights"]
    return specs, weights


def _score(tiny_rewards, names, **kwargs):
    specs, weights = _specs(tiny_rewards, names)
    results = rewardkit.score("examples/videos", specs, weights=weights, prompts=PROMPTS, progress=False, **kwargs)
    return results.sort_values(["reward", "path"]).reset_index(drop=True)


def test_rewards_whose_transforms_agree_share_preprocessed_frames(tiny_rewards):
    """clip and aesthetic load the same tiny open_clip backbone, so open_clip builds the same eval transform
    for both: the decoding worker's ``shared_preprocess`` hands both rewards one tensor (the same object,
    preprocessed once), while pickscore's transformers processor and hpsv2's pad-to-square are different
    steps and get their own, equal to their step applied alone."""
    from rewardkit.testing import pattern_image

    specs, weights = _specs(tiny_rewards, ["clip", "aesthetic", "pickscore", "hpsv2"])
    slots = engine.build_slots(specs, device="cpu", dtype="fp32", weights=weights, frames="segmental:4", weighting="mean", seed=0)
    frames = {index: pattern_image(96, 64, seed=index) for index in range(3)}
    shared: dict = {}
    clip, aesthetic, pickscore, hpsv2 = (
        engine.shared_preprocess(slot.plan.preprocess, frames, [0, 2], shared) for slot in slots
    )
    assert clip is aesthetic and clip.shape == (2, 3, 224, 224)
    assert pickscore is not clip and hpsv2 is not clip and hpsv2 is not pickscore
    for slot, tensors in zip(slots, (clip, aesthetic, pickscore, hpsv2), strict=True):
        alone = torch.stack([slot.module.preprocessor(frames[index]) for index in (0, 2)])
        torch.testing.assert_close(tensors, alone, atol=0, rtol=0)


def test_shared_run_rows_equal_separate_runs(tiny_rewards):
    """One run of clip + aesthetic + pickscore gives exactly the scores of each reward run alone (sharing
    only skips repeated work; atol 0)."""
    together = _score(tiny_rewards, ["clip", "aesthetic", "pickscore"], workers=0)
    alone = pd.concat([_score(tiny_rewards, [name], workers=0) for name in ["clip", "aesthetic", "pickscore"]])
    alone = alone.sort_values(["reward", "path"]).reset_index(drop=True)
    assert (together["status"] == "ok").all() and len(together) == 15
    assert together["path"].tolist() == alone["path"].tolist()
    np.testing.assert_array_equal(together["score"].to_numpy(float), alone["score"].to_numpy(float))


@pytest.mark.parametrize(
    ("bytes_per_frame", "available", "expected"),
    [
        (64 * 2**20, 2**30, 8),  # half of 1 GiB over 64 MiB a frame, by hand
        (10 * 2**20, 3 * 2**30, 153),  # 1.5 GiB / 10 MiB = 153.6, rounded down
        (1024, 2**30, AUTO_BATCH_FRAMES),  # at least 1 MiB a frame: 512 -> capped at the start size
        (2**30, 2**30, 1),  # not even one frame fits the fraction: one frame at a time
    ],
)
def test_cpu_auto_batch_rule(bytes_per_frame, available, expected):
    """The documented CPU rule, against hand-computed values."""
    assert auto_batch_frames(bytes_per_frame, available) == expected


def test_auto_batch_backs_off_on_out_of_memory_and_keeps_the_scores(tiny_rewards, monkeypatch):
    """A device that fits 3 frames: hpsv2 raises torch.OutOfMemoryError above that (as CUDA's allocator
    does). batch_size="auto" halves until batches fit and every row equals batch_size=1's (atol 1e-6, the
    batch-size invariance the README states)."""
    from rewardkit.rewards.hpsv2 import HPSv2

    single = _score(tiny_rewards, ["hpsv2"], workers=0, batch_size=1)
    original = HPSv2.score_preprocessed
    batches = []

    def small_device(self, pixel_values, prompts):
        if len(pixel_values) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (a 3-frame device)")
        batches.append(len(pixel_values))
        return original(self, pixel_values, prompts)

    monkeypatch.setattr(HPSv2, "score_preprocessed", small_device)
    auto = _score(tiny_rewards, ["hpsv2"], workers=0, batch_size="auto")
    assert (auto["status"] == "ok").all() and max(batches) == 2
    np.testing.assert_allclose(auto["score"].to_numpy(float), single["score"].to_numpy(float), atol=1e-6, rtol=0)


def test_auto_batch_on_cpu_probes_memory_then_batches_larger(tiny_rewards, monkeypatch):
    """On the CPU the first 4 frames are the probe; the rule then gets the measured growth per frame and
    the available memory, and the next batches follow its answer (here 5 frames, from a stand-in rule that
    records its arguments). Scores equal batch_size=1's."""
    single = _score(tiny_rewards, ["hpsv2"], workers=0, batch_size=1)
    seen = []

    def rule(bytes_per_frame, available):
        seen.append((bytes_per_frame, available))
        return 5

    monkeypatch.setattr(engine, "auto_batch_frames", rule)
    from rewardkit.rewards.hpsv2 import HPSv2

    original, batches = HPSv2.score_preprocessed, []
    monkeypatch.setattr(HPSv2, "score_preprocessed", lambda self, x, p: batches.append(len(x)) or original(self, x, p))
    auto = _score(tiny_rewards, ["hpsv2"], workers=0, batch_size="auto")
    assert len(seen) == 1 and seen[0][0] >= 0 and seen[0][1] > 0
    assert batches[0] == 4 and max(batches) == 5
    np.testing.assert_allclose(auto["score"].to_numpy(float), single["score"].to_numpy(float), atol=1e-6, rtol=0)


def test_resident_peak_growth_sees_a_large_allocation():
    """A 200 MB tensor touched inside the step raises the measured peak by at least that (Linux). Measured in
    a fresh process, so that the number does not depend on what other tests left in the heap (the next test
    covers that case)."""
    code = (
        "import torch\n"
        "from rewardkit.scoring import engine\n"
        "grown, result = engine.resident_peak_growth(lambda: float(torch.ones(50 * 2**20).sum()))\n"
        "print(grown, int(result))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    grown, result = output.stdout.split()
    if grown == "None":
        pytest.skip("no /proc/self/clear_refs here")
    assert int(result) == 50 * 2**20 and int(grown) >= 190 * 2**20



def test_resident_peak_growth_after_an_earlier_larger_peak():
    """The long-lived-process case: an earlier 192 MiB of small tensors was freed, but glibc keeps the
    freed pages resident (a live tensor pins the heap's top), and the step's 64 MiB of small tensors reuse
    them. Without releasing the free heap first the peak did not rise at all (read 8 KiB here); the probe
    must still see the step's 64 MiB (1024 x 64 KiB alive at once, counted by hand). Fresh process, Linux."""
    code = (
        "import torch\n"
        "from rewardkit.scoring import engine\n"
        "def step():\n"
        "    tensors = [torch.ones(16 * 1024) for _ in range(1024)]\n"
        "    return sum(float(t.sum()) for t in tensors)\n"
        "step()\n"
        "earlier = [torch.ones(16 * 1024) for _ in range(3072)]\n"
        "last = earlier.pop()\n"
        "del earlier\n"
        "grown, result = engine.resident_peak_growth(step)\n"
        "print(grown, int(result))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    grown, result = output.stdout.split()
    if grown == "None":
        pytest.skip("no /proc/self/clear_refs here")
    assert int(result) == 1024 * 16 * 1024 and int(grown) >= 60 * 2**20

@pytest.mark.slow  # imports torch._dynamo: seconds
def test_compile_called_modules_picks_the_outermost_called_networks(tiny_rewards):
    """hpsv2 calls open_clip's visual tower (encode_image) and text transformer pieces, never the CLIP
    module's own forward: the outermost called submodules are compiled, not the unused top."""
    from rewardkit import create_reward

    reward = create_reward("hpsv2", **tiny_rewards["hpsv2"])
    images = torch.rand(2, 3, 224, 224)
    count = engine.compile_called_modules(reward, lambda: reward(images, ["a", "b"]))
    compiled = [name for name, module in reward.named_modules() if getattr(module, "_compiled_call_impl", None) is not None]
    assert count == len(compiled) and "model.visual" in compiled and "model" not in compiled


@pytest.mark.slow
def test_compiled_scores_match_eager(tiny_rewards, capsys, monkeypatch):
    """compile_models gives the eager scores within 1e-5 and prints its warm-up (how long the warm-up takes
    is measured in benchmarks/gpu/scoring_gpu.py, not asserted here). The modules are compiled with dynamo's ``aot_eager`` backend here (graph capture and AOT
    tracing, as with inductor, without inductor's C++ build, which takes many minutes on a shared 2-core
    machine); benchmarks/gpu/scoring_gpu.py measures inductor on a GPU."""
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: compile_module(self, backend="aot_eager"))
    eager = _score(tiny_rewards, ["hpsv2"], workers=0)
    compiled = _score(tiny_rewards, ["hpsv2"], workers=0, compile_models=True)
    np.testing.assert_allclose(compiled["score"].to_numpy(float), eager["score"].to_numpy(float), atol=1e-5, rtol=0)
    assert "warm-up " in capsys.readouterr().err


def test_cli_batch_size_auto_and_compile_are_options(capsys):
    """--batch-size takes auto or a whole number; anything else is a usage error (exit 2)."""
    parser_args = ["score", "examples/videos", "--batch-size", "auto", "--compile", "--no-progress", "--workers", "0",
                   "--reward", "temporal_flickering"]
    assert main(parser_args) == 0
    for bad in ("0", "-3", "lots"):
        with pytest.raises(SystemExit) as raised:
            main(["score", "examples/videos", "--batch-size", bad])
        assert raised.value.code == 2
    assert "whole number of frames" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_scoring_benchmark_tiny_smoke(tmp_path):
    """benchmarks/gpu/scoring_gpu.py --tiny on the CPU (kept cheap for CI: three cases, tiny sizes) writes
    its JSON and Markdown table with the engine's parts as shares that sum to 1."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("scoring_gpu", "benchmarks/gpu/scoring_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "scoring.json"
    module.main(["--tiny", "--rewards", "hpsv2,engine,decode", "--out", str(out)])
    cases = {row["reward"] if row.get("case") != "engine" else "engine": row for row in json.loads(out.read_text())["cases"]}
    assert cases["hpsv2"]["images_per_s_fp32"] > 0 and cases["hpsv2"]["max_abs_diff_bf16"] < 0.1
    engine_row = cases["engine"]
    assert engine_row["failed"] == 0 and engine_row["files_per_s"] > 0
    assert sum(engine_row[f"{part}_share"] for part in ("decode", "preprocess", "model")) == pytest.approx(1, abs=0.01)
    assert cases["torchcodec"]["frames_per_s_cpu"] > 0
    assert "| engine" in out.with_suffix(".md").read_text() or "(engine)" in out.with_suffix(".md").read_text()
