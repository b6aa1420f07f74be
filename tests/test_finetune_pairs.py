"""`rewardkit pairs` on a hand-written `rewardkit score` table (long format: path, prompt, reward, score,
status, and a patch reward's per-patch columns), and the data checks of the training sets: pairs and CSV
rows with corrupt videos or empty prompts are errors naming file and row (or skipped, counted), ties are
dropped, clips are contiguous windows at data.sample_fps, centre-cropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rewardkit.cli import main
from rewardkit.finetune.data import ClipDataset, PairDataset, read_clip, window_indices
from rewardkit.finetune.pairs import build_pairs


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_bright_dark_data

    return write_bright_dark_data(tmp_path_factory.mktemp("bright-dark"), count=3)


def _table(videos: Path) -> pd.DataFrame:
    rows = []
    scores = {"000-bright.mp4": 0.9, "000-dark.mp4": 0.1, "001-bright.mp4": 0.5, "001-dark.mp4": 0.5, "002-bright.mp4": 0.7, "002-dark.mp4": 0.3}
    for name, score in scores.items():
        prompt = f"prompt {name[:3]}"
        rows.append({"path": str(videos / name), "prompt": prompt, "reward": "patch", "options": "", "score": score, "status": "ok",
                     "patch_0_0": score, "patch_0_1": score / 2, "patch_1_0": 0.0, "patch_1_1": 1.0})
    rows.append({"path": str(videos / "002-dark.mp4"), "prompt": "prompt 002", "reward": "aesthetic", "options": "", "score": 5.0, "status": "ok"})
    rows.append({"path": str(videos / "missing.mp4"), "prompt": "prompt 002", "reward": "patch", "options": "", "score": float("nan"), "status": "failed"})
    return pd.DataFrame(rows)


def test_pairs_best_worst_with_patches(videos, tmp_path, capsys):
    """Per prompt the best vs the worst ok video; the tie (0.5 vs 0.5) is left out and counted; per-patch
    columns become rows x cols grids; paths are relative to the output's folder; the file loads as data."""
    table_path = tmp_path / "results.csv"
    _table(videos).to_csv(table_path, index=False)
    out = videos / "pairs-out.jsonl"
    assert main(["pairs", str(table_path), "--out", str(out), "--reward", "patch"]) == 0
    assert "2 pairs, 1 ties left out" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in records] == [
        ("prompt 000", "000-bright.mp4", "000-dark.mp4"), ("prompt 002", "002-bright.mp4", "002-dark.mp4")]
    assert records[0]["margin"] == pytest.approx(0.8) and records[0]["tie"] is False
    assert records[0]["chosen_patches"] == [[0.9, 0.45], [0.0, 1.0]]
    dataset = PairDataset(out, num_frames=8, height=16, width=16)
    assert len(dataset) == 2 and dataset[0]["chosen_path"] == str(videos / "000-bright.mp4")
    assert dataset[0]["chosen_patches"].shape == (2, 2)


def test_pairs_rules_margin_and_errors(videos):
    """--rule all pairs every two videos with different scores; --margin turns small differences into
    ties; a table with two rewards needs --reward."""
    table = _table(videos)
    assert len(build_pairs(table, "patch", rule="all")[0]) == 2
    pairs, ties = build_pairs(table, "patch", margin=0.5)
    assert [pair["prompt"] for pair in pairs] == ["prompt 000"] and ties == 2
    with pytest.raises(ValueError, match="choose one with --reward"):
        build_pairs(table)
    with pytest.raises(ValueError, match="no ok scores of reward 'hpsv2'"):
        build_pairs(table, "hpsv2")


def test_pair_and_csv_rows_are_checked_before_training(videos, tmp_path, capsys):
    """A corrupt video or an empty prompt is an error naming the file and the row; invalid_rows = skip
    drops the rows and says how many; ties are dropped unless kept."""
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    good = {"prompt": "a cat", "chosen": str(videos / "000-bright.mp4"), "rejected": str(videos / "000-dark.mp4")}
    lines = [good, {**good, "rejected": str(tmp_path / "corrupt.mp4")}, {**good, "prompt": "  "}, {**good, "tie": True}]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match=r"pairs\.jsonl' row 2: .*corrupt\.mp4: the video cannot be read"):
        PairDataset(pairs, 8, 16, 16)
    dataset = PairDataset(pairs, 8, 16, 16, invalid_rows="skip")
    assert len(dataset) == 1 and "skipped 2 invalid row(s)" in capsys.readouterr().err
    assert len(PairDataset(pairs, 8, 16, 16, invalid_rows="skip", keep_ties=True)) == 2
    table = tmp_path / "clips.csv"
    pd.DataFrame({"path": [str(videos / "000-bright.mp4"), str(videos / "001-dark.mp4")], "prompt": ["a cat", ""]}).to_csv(table, index=False)
    with pytest.raises(ValueError, match=r"clips\.csv' row 3: the prompt is empty"):
        ClipDataset(table, 8, 16, 16)


def test_clip_is_a_contiguous_window_at_sample_fps_centre_cropped(tmp_path):
    """A 40-frame 24 fps clip whose frame i has brightness i: at sample_fps 8 the window takes every 3rd
    frame from a random start (consecutive differences of 3 frames); a 32x16 clip is resized to cover
    16x16 and the centre is kept (the left and right quarters, marked, are cut off)."""
    from rewardkit.video.io import write_video

    frames = np.zeros((40, 16, 32, 3), dtype=np.uint8)
    frames[:, :, 8:24] = (np.arange(40) * 6)[:, None, None, None]
    frames[:, :, :8] = frames[:, :, 24:] = 255
    path = tmp_path / "ramp.mp4"
    write_video(path, frames, fps=24.0)
    assert window_indices(40, 4, 3.0, 5) == [5, 8, 11, 14]
    clip = read_clip(str(path), 8, 16, 16, sample_fps=8.0, generator=torch.Generator().manual_seed(0))
    assert clip.shape == (8, 3, 16, 16)
    centre = clip[:, :, 4:12, 6:10].mean(dim=(1, 2, 3)) * 255 / 6  # frame index, from the brightness ramp
    steps = centre[1:] - centre[:-1]
    assert torch.allclose(steps, torch.full_like(steps, 3.0), atol=0.6), centre
    assert clip[:, :, :, 0].mean() < 0.9  # the white side bars are cropped away
