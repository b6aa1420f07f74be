"""Issue 13 §3: the saving when rewards on the same frames share decoding and preprocessing.

Workload: ``clip``, ``aesthetic`` and ``pickscore`` (tiny random weights; preprocessing does not depend on
the model size: all three take 224 px frames) on ``CLIPS`` generated 32-frame 256x256 H.264 clips, 4
segmental frames each. Two comparisons, side by side in one process:

- ``preprocess``: the three rewards' reference preprocessing of the decoded frames through the engine's
  ``shared_preprocess`` with one shared table per file (clip and aesthetic use the same open_clip eval
  transform, so it runs once for both; pickscore's transformers processor is a different step) against a
  table per reward (nothing shared). Ratio = unshared / shared seconds: 3/2 if the three steps cost the
  same, up to 2 as pickscore's gets cheaper than open_clip's.
- ``score``: ``rewardkit.score`` with the three rewards in one run (one decode per file, shared
  preprocessing) against three runs, one per reward (``workers=0``). Ratio = three runs / one run.

Run: ``uv run python benchmarks/bench_shared.py [--clips N]`` prints both ratios; CI runs
``test_shared_smoke`` (2 clips) so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REWARDS = ("clip", "aesthetic", "pickscore")


def _setup(folder: Path, clips: int) -> tuple[list[str], dict[str, Any], list[Path]]:
    from rewardkit.testing import tiny_reward_options
    from rewardkit.testing.dover import pattern_video
    from rewardkit.video.io import write_video

    specs, weights = [], {}
    for name in REWARDS:
        options = tiny_reward_options(name, folder / name)
        specs.append(name + (f":architecture={options['architecture']}" if "architecture" in options else ""))
        weights[name] = options["weights"]
    videos = folder / "videos"
    videos.mkdir()
    paths = []
    for index in range(clips):
        paths.append(videos / f"a drifting pattern {index}-0.mp4")
        write_video(paths[-1], pattern_video(32, 256, 256, seed=index))
    return specs, weights, paths


def measure(clips: int) -> dict[str, Any]:
    from rewardkit import score
    from rewardkit.scoring.engine import build_slots, shared_preprocess
    from rewardkit.video.io import read_frames

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        specs, weights, paths = _setup(folder, clips)
        slots = build_slots(specs, device="cpu", dtype="fp32", weights=weights, frames="segmental:4", weighting="mean", seed=0)
        indices = slots[0].sampler.indices(32, np.random.default_rng(0))
        decoded = [dict(zip(indices, read_frames(path, indices), strict=True)) for path in paths]
        preprocessors = [slot.plan.preprocess for slot in slots]

        def preprocess(shared: bool) -> float:
            started = time.perf_counter()
            for frames in decoded:
                table: dict = {}
                for preprocessor in preprocessors:
                    shared_preprocess(preprocessor, frames, indices, table if shared else {})
            return time.perf_counter() - started

        preprocess(True)  # warm-up (PIL, torchvision)
        shared_s, separate_s = preprocess(True), preprocess(False)
        common = {"weights": weights, "prompts": None, "workers": 0, "progress": False}
        for path in paths:
            path.with_suffix(".txt").write_text("a drifting pattern")
        started = time.perf_counter()
        together = score(paths[0].parent, specs, **common)
        one_run_s = time.perf_counter() - started
        started = time.perf_counter()
        alone = [score(paths[0].parent, [spec], **common) for spec in specs]
        three_runs_s = time.perf_counter() - started
    ok = (together["status"] == "ok").all() and all((frame["status"] == "ok").all() for frame in alone)
    return {
        "clips": clips, "rewards": list(REWARDS), "all_ok": bool(ok),
        "preprocess_shared_s": round(shared_s, 3), "preprocess_separate_s": round(separate_s, 3),
        "preprocess_ratio": round(separate_s / shared_s, 2),
        "score_one_run_s": round(one_run_s, 2), "score_three_runs_s": round(three_runs_s, 2),
        "score_ratio": round(three_runs_s / one_run_s, 2),
    }


def test_shared_smoke() -> None:
    """CI smoke: 2 clips through both comparisons; every row is ok and sharing is not slower than doing
    the work per reward (the ratio >= 1 within timing noise)."""
    result = measure(2)
    assert result["all_ok"] and result["preprocess_ratio"] > 0.8, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.clips), indent=2))


if __name__ == "__main__":
    main()
