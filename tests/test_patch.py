"""Patch-level rewards (HALO-style): crop geometry, per-patch scores, pooling, the engine's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rewardkit import create_reward
from rewardkit.cli import main
from rewardkit.rewards.wrappers import PatchReward, PerFrameReward, parse_grid, patch_boxes
from rewardkit.scoring import score
from rewardkit.testing import pattern_image
from rewardkit.video.io import write_video
from rewardkit.video.sampling import Segmental
from rewardkit.video.weighting import TemporalAttenuation


def test_patch_boxes_tile_exactly_without_overlap():
    # Hand-built: 300 px in 3 patches are [0,100), [100,200), [200,300) on both axes, row by row.
    boxes = patch_boxes(300, 300, (3, 3))
    assert boxes[:3] == [(0, 0, 100, 100), (0, 100, 100, 200), (0, 200, 100, 300)]
    assert boxes[-1] == (200, 200, 300, 300) and len(boxes) == 9


def test_patch_boxes_with_overlap_and_uneven_sides():
    # overlap 0.5 on 300 px, 3 patches: size 300 / (3 - 2 * 0.5) = 150, stride 75.
    rows = sorted({(top, bottom) for top, _, bottom, _ in patch_boxes(300, 40, (3, 1), overlap=0.5)})
    assert rows == [(0, 150), (75, 225), (150, 300)]
    # 10 px in 3 tiles: edges round(0), round(3.33), round(6.67), 10.
    cols = [(left, right) for _, left, _, right in patch_boxes(4, 10, (1, 3))]
    assert cols == [(0, 3), (3, 7), (7, 10)]


@pytest.mark.parametrize(
    ("grid", "overlap", "message"),
    [((0, 3), 0.0, "at least 1x1"), ((3, 3), 1.0, "overlap"), ((40, 40), 0.0, "at least 2 pixels")],
)
def test_patch_boxes_reject_bad_geometry(grid, overlap, message):
    with pytest.raises(ValueError, match=message):
        patch_boxes(64, 64, grid, overlap)


def test_parse_grid():
    assert parse_grid("3x3") == (3, 3) and parse_grid("2X4") == (2, 4) and parse_grid("5") == (5, 5)
    assert parse_grid((2, 3)) == (2, 3)
    with pytest.raises(ValueError, match="ROWSxCOLS"):
        parse_grid("3by3")


@pytest.fixture(scope="module")
def hps(tiny_rewards):
    return create_reward("hpsv2", **tiny_rewards["hpsv2"])


@pytest.mark.parametrize("mode", ["reference", "differentiable"])
def test_patch_scores_equal_the_base_reward_on_each_crop(tiny_rewards, mode):
    """Independent computation: crop with numpy, score every crop with the plain base reward."""
    base = create_reward("hpsv2", mode=mode, **tiny_rewards["hpsv2"])
    patch = PatchReward(base, grid=(2, 3), overlap=0.25)
    images = np.stack([pattern_image(90, 60, seed=seed) for seed in range(2)])  # [2, 60, 90, 3]
    prompts = ["a cat", "a dog"]
    result = patch.patches(torch.from_numpy(images).permute(0, 3, 1, 2), prompts)
    assert result.patches.shape == (2, 2, 3) and result.pooled.shape == (2,)
    for position, (top, left, bottom, right) in enumerate(patch_boxes(60, 90, (2, 3), 0.25)):
        crops = torch.from_numpy(np.ascontiguousarray(images[:, top:bottom, left:right])).permute(0, 3, 1, 2)
        expected = base(crops, prompts)
        torch.testing.assert_close(result.patches[:, position // 3, position % 3], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.pooled, result.patches.flatten(1).mean(1))
    torch.testing.assert_close(patch(torch.from_numpy(images).permute(0, 3, 1, 2), prompts), result.pooled)


def test_min_pooling_and_video_shapes(hps):
    patch = PatchReward(hps, grid=(2, 2), pooling="min")
    videos = torch.rand(2, 3, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    result = patch.patches(videos, ["a", "b"])
    assert result.patches.shape == (2, 3, 2, 2) and result.pooled.shape == (2, 3)
    torch.testing.assert_close(result.pooled, result.patches.flatten(2).amin(-1))
    # As a frame reward inside VideoReward: the pooled patch score per sampled frame, then the weighting.
    video_reward = PerFrameReward(patch, Segmental(3, "first"), TemporalAttenuation(1.0))
    expected = TemporalAttenuation(1.0)(result.pooled, torch.tensor([[0, 1, 2]] * 2), 3)
    torch.testing.assert_close(video_reward(videos, ["a", "b"]), expected)


def test_gradients_reach_every_pixel_of_every_patch(tiny_rewards):
    base = create_reward("hpsv2", mode="differentiable", **tiny_rewards["hpsv2"])
    patch = PatchReward(base, grid=(3, 3))
    pixels = torch.rand(1, 3, 48, 48, requires_grad=True)
    patch.patches(pixels, ["a red square"]).patches.sum().backward()
    per_patch = pixels.grad.abs().sum(1)[0].unflatten(0, (3, 16)).unflatten(2, (3, 16)).sum((1, 3))
    assert (per_patch > 0).all(), "some patch received no gradient"


def test_registered_patch_reward_passes_base_options_through(tiny_rewards):
    options = tiny_rewards["hpsv2"]
    patch = create_reward("patch", base="hpsv2", grid="2x2", weights=options["weights"], architecture=options["architecture"])
    assert isinstance(patch, PatchReward) and patch.grid == (2, 2) and patch.output_names == ("0_0", "0_1", "1_0", "1_1")
    with pytest.raises(ValueError, match="unknown option 'architectur'"):
        create_reward("patch", base="hpsv2", weights=options["weights"], architectur=options["architecture"])
    with pytest.raises(ValueError, match="image reward as base"):
        create_reward("patch", base="temporal_flickering")


def test_engine_writes_per_patch_columns(tmp_path, tiny_rewards):
    """The pooled score is the mean of the patch columns (mean pooling and frame weighting are both
    linear, so they commute) for images and videos alike."""
    options = tiny_rewards["hpsv2"]
    frames = np.stack([pattern_image(64, 48, seed=seed) for seed in range(8)])
    write_video(tmp_path / "clip.mp4", frames)
    (tmp_path / "clip.txt").write_text("a moving pattern")
    from PIL import Image

    Image.fromarray(pattern_image(64, 48, seed=9)).save(tmp_path / "still.png")
    (tmp_path / "still.txt").write_text("a still pattern")
    spec = f"patch:base=hpsv2,grid=2x2,architecture={options['architecture']}"
    out = tmp_path / "results.csv"
    table = score(tmp_path, [spec], weights={"patch": options["weights"]}, out=out, workers=0, progress=False,
                  weighting="tar:1.0")
    columns = [f"patch_{row}_{col}" for row in range(2) for col in range(2)]
    assert set(columns) <= set(table.columns) and (table["status"] == "ok").all()
    np.testing.assert_allclose(table[columns].mean(axis=1), table["score"], atol=1e-6)
    assert pd.read_csv(out)[columns].notna().all().all()
    # The still image's patch columns equal the patch reward run directly.
    direct = create_reward("patch", base="hpsv2", grid="2x2", **options).patches(
        torch.from_numpy(pattern_image(64, 48, seed=9)).permute(2, 0, 1)[None], ["a still pattern"]
    )
    still = table[table["path"].str.endswith("still.png")].iloc[0]
    np.testing.assert_allclose(still[columns].to_numpy(float), direct.patches.flatten().numpy(), atol=1e-5)


def test_cli_patch_spec_and_a_later_run_with_other_rewards_widen_the_csv(tmp_path, tiny_rewards, capsys):
    options = tiny_rewards["hpsv2"]
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(pattern_image(48, 48, seed=1)).save(tmp_path / "one.png")
    (tmp_path / "one.txt").write_text("a pattern")
    out = tmp_path / "results.csv"
    base = ["score", str(tmp_path / "one.png"), "--no-progress", "--workers", "0", "--out", str(out)]
    assert main([*base, "--reward", "temporal_flickering"]) == 0
    assert main([*base, "--reward", f"patch:base=hpsv2,grid=3x3,architecture={options['architecture']}",
                 "--weights", f"patch={options['weights']}"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out)
    assert set(table["reward"]) == {"temporal_flickering", "patch"}
    assert "patch_2_2" in table.columns and table.loc[table["reward"] == "patch", "patch_2_2"].notna().all()
