"""Leaderboard pictures read right: cells are coloured by where each value sits on its dimension's scale
(VBench's Min-Max, the registry's score range, or the board), checked by reading pixel colours back
from the PNG, and no title or label is cut off."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rewardkit.eval.leaderboard import (
    COLOUR_LIMITS,
    COLOUR_MAP,
    LEADING_COLUMNS,
    colour_positions,
    plot_board,
    rank,
    render,
)


def write_board(path, rows: dict[str, dict[str, float]]):
    frame = pd.DataFrame([{"model": model, "suite": path.stem, **values} for model, values in rows.items()])
    for column in LEADING_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan if column in ("total", "quality", "semantic", "videos") else ""
    dimensions = [column for column in frame.columns if column not in LEADING_COLUMNS]
    frame[LEADING_COLUMNS + dimensions].to_csv(path, index=False)
    return path


def expected_rgb(position: float) -> np.ndarray:
    """The documented mapping: position p on the scale -> RdYlGn at (p - lo) / (hi - lo)."""
    low, high = COLOUR_LIMITS
    rgba = matplotlib.colormaps[COLOUR_MAP]((position - low) / (high - low))
    return np.round(np.array(rgba[:3]) * 255)


def pixels_near(image: np.ndarray, rgb: np.ndarray, tolerance: float = 3.0) -> int:
    return int((np.abs(image[..., :3].astype(float) - rgb).max(axis=-1) <= tolerance).sum())


def test_positions_use_vbench_range_score_range_and_board():
    board = pd.DataFrame({"model": ["a", "b"], "temporal_flickering": [1.0, 0.6293], "hpsv2": [0.0, 0.5], "custom": [2.0, 4.0]})
    positions, scales = colour_positions(board, ["temporal_flickering", "hpsv2", "custom"])
    assert scales == ["vbench", "range", "board"]
    # By hand: VBench Min 0.6293, Max 1 -> 1 and 0; hpsv2 range -1..1 -> 0.5 and 0.75; board 2..4 -> 0 and 1.
    np.testing.assert_allclose(positions, [[1.0, 0.5, 0.0], [0.0, 0.75, 1.0]])


def test_png_cells_carry_the_colour_of_their_value(tmp_path):
    board = write_board(tmp_path / "demo.csv", {
        "best": {"temporal_flickering": 1.0, "hpsv2": 0.5},
        "worst": {"temporal_flickering": 0.6293, "hpsv2": -1.0},
    })
    image = np.asarray(Image.open(render(board, tmp_path)["png"]).convert("RGB"))
    for position in (1.0, 0.0, 0.75):  # flickering top and bottom; hpsv2 0.5 on -1..1 sits at 0.75
        assert pixels_near(image, expected_rgb(position)) > 300, position


def test_a_single_model_is_coloured_by_its_value_not_as_the_worst(tmp_path):
    """One model used to come out orange (the bottom of a board-relative scale). Its 0.98 flicker score
    sits at (0.98 - 0.6293) / (1 - 0.6293) = 0.946 of VBench's range: green."""
    board = write_board(tmp_path / "one.csv", {"only": {"temporal_flickering": 0.98}})
    image = np.asarray(Image.open(render(board, tmp_path)["png"]).convert("RGB"))
    assert pixels_near(image, expected_rgb((0.98 - 0.6293) / (1 - 0.6293))) > 300
    assert pixels_near(image, expected_rgb(0.0)) < 100  # only the colourbar's bottom sliver, no cell
    green, red = expected_rgb(1.0), expected_rgb(0.0)
    assert green[1] > green[0] and red[0] > red[1]  # the scale's ends are what the colourbar says


@pytest.mark.parametrize("dimensions", [1, 9])
def test_nothing_sticks_out_of_the_figure(tmp_path, dimensions):
    names = ["temporal_flickering", "subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
             "aesthetic_quality", "imaging_quality", "scene", "appearance_style"][:dimensions]
    path = write_board(tmp_path / "a-rather-long-suite-name-for-a-leaderboard.csv", {"m": dict.fromkeys(names, 0.9)})
    from rewardkit.eval.leaderboard import load_board

    ranked, key = rank(load_board(path))
    figure = plot_board(ranked, key, ["rank", "model", key, *names], path.stem)
    figure.canvas.draw()
    inside = figure.get_tightbbox(figure.canvas.get_renderer())
    width, height = figure.get_size_inches()
    assert inside.x0 >= 0 and inside.y0 >= 0 and inside.x1 <= width and inside.y1 <= height
