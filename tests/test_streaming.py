"""Streaming the all-frame metrics (issue 12 §2) and the frame-rate, TAR and batch-size guarantees (§4).

References: VBench's formulas written out in numpy on the frames ``read_frames`` decodes from the same file
(flicker: mean over pairs of mean |F_i - F_i+1| in float32; dynamic degree: DIS flow, VBench's sort and
``check_move`` loop; motion smoothness: mean |odd frame - midpoint| with the module's own midpoint, whose
warp is checked against scipy in test_motion.py), hand-computed TAR weights, and the container's frame
rate as written by PyAV.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import rewardkit
from rewardkit import create_reward
from rewardkit.cli import main
from rewardkit.errors import UserInputError
from rewardkit.rewards.motion import interpolate_midpoint
from rewardkit.rewards.videoreward import VideoAlignSampler
from rewardkit.scoring import engine
from rewardkit.testing.vbench import moving_square_clip
from rewardkit.video.io import iter_frames, probe, read_frames, write_video
from rewardkit.video.weighting import TemporalAttenuation, parse_weighting


def vbench_flicker(frames: np.ndarray) -> float:
    maes = [np.mean(np.abs(frames[i].astype(np.float32) - frames[i + 1].astype(np.float32))) for i in range(len(frames) - 1)]
    return float((255.0 - np.mean(maes)) / 255.0)


def vbench_dynamic(frames: np.ndarray) -> tuple[float, float]:
    """DIS flow per kept pair, top 5 % by np.sort, VBench's check_move loop."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    stats = []
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        flow = dis.calc(a, b, None)
        radius = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2).ravel()
        stats.append(float(np.mean(-np.sort(-radius)[: int(radius.size * 0.05)])))
    thres, count_num = 6.0 * min(frames.shape[1:3]) / 256.0, round(4 * len(frames) / 16.0)
    moving = 0
    for stat in stats:
        moving += stat > thres
        if moving >= count_num:
            return 1.0, float(np.mean(stats))
    return 0.0, float(np.mean(stats))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """19 frames (two full chunks of 8 and a partial one), a square moving 1 px/frame, 24 fps."""
    path = tmp_path_factory.mktemp("stream") / "square.mp4"
    write_video(path, moving_square_clip(19, 64, 64, speed=1.0), fps=24)
    return path


def test_iter_frames_yields_bounded_chunks_equal_to_read_frames(clip):
    every = read_frames(clip)
    chunks = list(iter_frames(clip, chunk=8))
    assert [len(chunk) for chunk in chunks] == [8, 8, 3]
    assert np.array_equal(np.concatenate(chunks), every)
    picked = list(iter_frames(clip, [0, 3, 6, 9, 18], chunk=2))
    assert [len(chunk) for chunk in picked] == [2, 2, 1]
    assert np.array_equal(np.concatenate(picked), every[[0, 3, 6, 9, 18]])
    with pytest.raises(ValueError, match="strictly increasing"):
        list(iter_frames(clip, [3, 1]))
    with pytest.raises(ValueError, match="out of range"):
        list(iter_frames(clip, [0, 19]))


def test_probe_reads_the_container_frame_rate(clip, tmp_path):
    assert probe(clip).fps == pytest.approx(24.0)
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "0.png")
    assert probe(folder).fps is None


def test_streamed_flicker_equals_vbench_formula_and_whole_clip(clip):
    decoded = read_frames(clip)
    metric = create_reward("temporal_flickering")
    streamed = metric.score_stream(iter_frames(clip, chunk=5), range(19), 19)["score"]
    assert streamed == pytest.approx(vbench_flicker(decoded), abs=1e-6)
    whole = metric(torch.from_numpy(decoded).permute(0, 3, 1, 2)[None]).item()
    assert streamed == pytest.approx(whole, abs=1e-7)
    row = rewardkit.score(clip, ["temporal_flickering"], workers=0, progress=False).iloc[0]
    assert row["status"] == "ok" and row["score"] == pytest.approx(streamed, abs=1e-7)


def test_streamed_motion_smoothness_equals_formula(clip):
    decoded = read_frames(clip)
    expected = np.mean([np.mean(cv2.absdiff(decoded[2 * j + 1], interpolate_midpoint(decoded[2 * j], decoded[2 * j + 2])))
                        for j in range(9)])
    metric = create_reward("motion_smoothness_flow")
    streamed = metric.score_stream(iter_frames(clip, chunk=3), range(19), 19)
    assert streamed["interp_mae"] == pytest.approx(expected, abs=1e-9)
    assert streamed["score"] == pytest.approx((255 - expected) / 255, abs=1e-12)


def test_dynamic_degree_reads_the_container_frame_rate(clip):
    """At 24 fps VBench keeps frames 0, 3, 6, ... (3 px per kept pair: dynamic); main assumed 8 fps (every
    frame, 1 px per pair: static)."""
    decoded = read_frames(clip)
    flag, statistic = vbench_dynamic(decoded[0::3])
    row = rewardkit.score(clip, ["dynamic_degree_flow"], workers=0, progress=False).iloc[0]
    assert row["status"] == "ok" and flag == 1.0
    assert row["score"] == flag
    assert row["dynamic_degree_flow_flow_top5"] == pytest.approx(statistic, rel=1e-5)
    assert row["dynamic_degree_flow_required_pairs"] == round(4 * 7 / 16)


def test_frame_folder_takes_the_fps_option_with_a_warning(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(moving_square_clip(10, 64, 64, speed=1.0)):
        Image.fromarray(frame).save(folder / f"{index}.png")
    with pytest.warns(UserWarning, match="taken as 23.5 fps"):
        row = rewardkit.score(folder, ["dynamic_degree_flow:fps=23.5"], workers=0, progress=False).iloc[0]
    assert row["status"] == "ok" and row["dynamic_degree_flow_required_pairs"] == round(4 * 4 / 16)  # frames 0, 3, 6, 9


def test_videoreward_sampler_uses_the_container_rate():
    """smart_nframes: 96 frames at 48 fps is 2 s -> 4 frames at 2 fps; at the assumed 24 fps it would be 8."""
    sampler = VideoAlignSampler(2.0, 24.0)
    assert len(sampler.indices(96, fps=48.0)) == 4
    assert len(sampler.indices(96, fps=24.0)) == 8


@pytest.fixture(scope="module")
def hps(hps_checkpoint, tiny_clip_config) -> dict[str, str]:
    return {"weights": str(hps_checkpoint), "architecture": str(tiny_clip_config)}


def test_memory_budget_fails_the_row_not_the_run(clip, monkeypatch, hps):
    """With a budget of 3 decoded 64x64 frames: the streaming metrics still score all 19 frames; an image
    reward asked for 4 frames at once gets a failed row that names the budget."""
    monkeypatch.setattr(engine, "DECODE_BUDGET_BYTES", 3 * 64 * 64 * 3)
    table = rewardkit.score(
        clip,
        ["temporal_flickering", "motion_smoothness_flow", f"hpsv2:architecture={hps['architecture']}"],
        weights={"hpsv2": hps["weights"]},
        prompts={str(clip): "a square"},
        frames="uniform:4",
        workers=0,
        progress=False,
    ).set_index("reward")
    assert table.loc["temporal_flickering", "status"] == "ok" and table.loc["motion_smoothness_flow", "status"] == "ok"
    assert table.loc["hpsv2", "status"] == "failed"
    assert "decode budget" in table.loc["hpsv2", "error"] and "REWARDKIT_DECODE_BUDGET_GB" in table.loc["hpsv2", "error"]


@pytest.mark.parametrize("spec", ["tar:nan", "tar:inf", "tar:-1", "tar:-inf:normalized"])
def test_out_of_range_tar_is_a_usage_error(spec, capsys):
    with pytest.raises(UserInputError, match="finite number >= 0"):
        parse_weighting(spec)
    code = main(["score", "examples/videos", "--weighting", spec, "--no-progress", "--workers", "0"])
    assert code == 2 and "finite number >= 0" in capsys.readouterr().err


def test_tar_scales_positions_to_the_papers_16_frame_clip():
    """F = 16 is the paper's exp(-|g - 8|); a 600-frame video's segmental:4 frames 0, 150, 300, 450 sit
    where 0, 4, 8, 12 sit in 16 frames and get their weights exp(-8), exp(-4), 1, exp(-4)."""
    tar = TemporalAttenuation(1.0)
    assert tar.weights(torch.tensor([0, 4, 8, 12, 15]), 16).tolist() == [math.exp(-d) for d in (8, 4, 0, 4, 7)]
    expected = [math.exp(-8), math.exp(-4), 1.0, math.exp(-4)]
    assert tar.weights(torch.tensor([0, 150, 300, 450]), 600).tolist() == pytest.approx(expected, rel=1e-12)
    scores = torch.full((1, 4), 0.5, dtype=torch.float64)
    value = tar(scores, torch.tensor([[0, 150, 300, 450]]), 600).item()
    assert value == pytest.approx(0.5 * sum(expected) / 4, rel=1e-12) and value > 0.1


def test_readme_batch_size_tolerance_holds_for_hpsv2(hps):
    """The README states how far scores may move with the batch size: the engine scores preprocessed frames
    ``batch_size`` at a time, so hpsv2 on the same 24 frames in batches of 1, 3, 8 and 24 must agree within it."""
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text(encoding="utf-8")
    match = re.search(r"batch sizes agree within ([0-9.e-]+)", readme)
    assert match, "README must state the batch-size tolerance"
    tolerance = float(match.group(1))
    reward = create_reward("hpsv2", architecture=hps["architecture"], weights=hps["weights"])
    images = np.random.default_rng(0).integers(0, 256, size=(24, 40, 56, 3), dtype=np.uint8)
    pixels = torch.stack([reward.preprocessor(image) for image in images])
    prompts = [f"prompt {index % 5}" for index in range(24)]
    with torch.inference_mode():
        scores = {size: torch.cat([reward.score_preprocessed(pixels[start : start + size], prompts[start : start + size])
                                   for start in range(0, 24, size)]) for size in (1, 3, 8, 24)}
    for size in (1, 3, 8):
        assert (scores[size] - scores[24]).abs().max().item() <= tolerance


@pytest.mark.slow  # DINO on 224-px frames, twice over 9 frames: over 10 s on the shared machine
def test_streamed_subject_consistency_equals_vbench_loop(tmp_path):
    """Tiny random DINO (official layout): the streamed score (chunks of 4 over 9 frames) equals VBench's
    per-video loop on the features of every decoded frame: mean over i >= 1 of (max(0, cos(f_i-1, f_i)) +
    max(0, cos(f_0, f_i))) / 2."""
    from rewardkit.testing.vbench import write_dino_checkpoint

    path = tmp_path / "square.mp4"
    write_video(path, moving_square_clip(9, 32, 32, speed=2.0, size=12))
    metric = create_reward("subject_consistency", weights=str(write_dino_checkpoint(tmp_path / "dino_vitbase16_pretrain.pth")))
    decoded = read_frames(path)
    with torch.inference_mode():
        streamed = metric.score_stream(iter_frames(path, chunk=4), range(9), 9)["score"]
        features = metric.features(torch.from_numpy(decoded).permute(0, 3, 1, 2).float())
    unit = (features / features.norm(dim=-1, keepdim=True)).double().numpy()
    loop = [(max(0.0, unit[i - 1] @ unit[i]) + max(0.0, unit[0] @ unit[i])) / 2 for i in range(1, 9)]
    assert streamed == pytest.approx(float(np.mean(loop)), abs=1e-5)
