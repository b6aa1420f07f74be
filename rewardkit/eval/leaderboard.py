"""Leaderboards kept as data: one CSV per suite (``leaderboards/SUITE.csv``, a row per model), rendered to
Markdown, a PNG chart and a self-contained static HTML page."""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rewardkit.errors import UserInputError
from rewardkit.eval.harness import load_run

__all__ = ["LEADING_COLUMNS", "add_run", "colour_positions", "load_board", "plot_board", "rank", "render"]

LEADING_COLUMNS = ["model", "suite", "date", "videos", "source", "rewardkit_version", "total", "quality", "semantic"]


def load_board(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A leaderboard CSV: the leading columns, then one column per dimension (raw scores, 0-1)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"leaderboard {str(path)!r} not found; create it with `rewardkit leaderboard add RUN`")
    board = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [column for column in ("model", "suite") if column not in board.columns]
    if missing:
        raise UserInputError(f"{path} is not a leaderboard: it lacks the column(s) {', '.join(missing)}")
    return board


def add_run(
    run: str | os.PathLike[str], board_dir: str | os.PathLike[str] = "leaderboards", model: str | None = None
) -> tuple[Path, str]:
    """Add a run's model to ``board_dir/SUITE.csv``, or replace its row in place; returns the CSV's path and
    what happened: ``"added"``, ``"updated"`` or ``"already present"`` (the same row was there already)."""
    loaded = load_run(run)
    summary = loaded.summary
    row = {
        "model": model or summary["model"],
        "suite": summary["suite"],
        "date": summary["date"],
        "videos": summary["videos"],
        "source": f"rewardkit eval {Path(run).name}",
        "rewardkit_version": summary["rewardkit_version"],
        "total": summary.get("total"),
        "quality": summary.get("quality"),
        "semantic": summary.get("semantic"),
    } | dict(zip(loaded.dimensions["dimension"], loaded.dimensions["score"], strict=True))
    path = Path(board_dir) / f"{summary['suite']}.csv"
    board = load_board(path) if path.is_file() else pd.DataFrame(columns=LEADING_COLUMNS)
    existing = [index for index, name in enumerate(board["model"]) if name == row["model"]]
    at = existing[0] if existing else len(board)
    kept = board[board["model"] != row["model"]]
    board = pd.concat([kept.iloc[:at], pd.DataFrame([row]), kept.iloc[at:]], ignore_index=True)
    dimensions = [column for column in board.columns if column not in LEADING_COLUMNS]
    text = board[LEADING_COLUMNS + dimensions].to_csv(index=False)
    if existing and path.read_text(encoding="utf-8") == text:
        return path, "already present"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, "updated" if existing else "added"


def rank(board: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Models best first, by VBench Total when every model has one, else by the mean of the dimension
    scores; returns the sorted board and the ranking column."""
    dimensions = [column for column in board.columns if column not in LEADING_COLUMNS]
    board = board.copy()
    if "total" in board.columns and board["total"].notna().all() and len(board):
        key = "total"
    else:
        board["mean"] = board[dimensions].astype(float).mean(axis=1)
        key = "mean"
    board = board.sort_values(key, ascending=False, kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board, key


def _percent(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "-"
    return f"{100 * float(value):.2f}"


def _display_columns(board: pd.DataFrame, key: str) -> list[str]:
    dimensions = [column for column in board.columns if column not in LEADING_COLUMNS + ["rank", "mean"]]
    totals = [column for column in ("total", "quality", "semantic") if column in board.columns and board[column].notna().any()]
    return ["rank", "model", *([key] if key == "mean" else []), *totals, *dimensions]


def render(board_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write ``SUITE.md``, ``SUITE.png`` and ``SUITE.html`` next to the CSV (or into ``out_dir``)."""
    board_path = Path(board_path)
    board, key = rank(load_board(board_path))
    out = Path(out_dir) if out_dir is not None else board_path.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = board_path.stem
    columns = _display_columns(board, key)
    paths = {"markdown": out / f"{stem}.md", "png": out / f"{stem}.png", "html": out / f"{stem}.html"}
    cells = [[str(row["rank"]), str(row["model"]), *(_percent(row[column]) for column in columns[2:])] for _, row in board.iterrows()]
    note = f"Scores in percent; ranked by {key}."
    markdown = [f"# Leaderboard: {stem}", "", note, "", "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    markdown += ["| " + " | ".join(row) + " |" for row in cells]
    paths["markdown"].write_text("\n".join(markdown) + "\n", encoding="utf-8")
    _plot(board, key, columns, stem, paths["png"])
    image = base64.b64encode(paths["png"].read_bytes()).decode("ascii")
    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells)
    paths["html"].write_text(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Leaderboard: {html.escape(stem)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:nth-child(2){text-align:left}img{max-width:100%;margin-top:1.5em}"
        f"</style></head><body><h1>Leaderboard: {html.escape(stem)}</h1><p>{html.escape(note)}</p>"
        f"<table id=\"leaderboard\"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
        f"<img alt=\"scores by model\" src=\"data:image/png;base64,{image}\"></body></html>\n",
        encoding="utf-8",
    )
    return paths


def colour_positions(board: pd.DataFrame, dimensions: list[str]) -> tuple[np.ndarray, list[str]]:
    """Where each cell sits on its dimension's scale (0 = bottom, 1 = top), and which scale each column uses.

    ``vbench``: VBench's normalisation range (Min to Max, the same constants as the totals); ``range``: the
    metric's declared score range in the registry; ``board``: the lowest to the highest value on this
    board (only for metrics with neither; a single value sits at 0.5). Scores are on the 0-1 scale of
    the CSV; values outside a scale are clipped to it."""
    from rewardkit.eval.vbench import VBENCH_DIMENSIONS
    from rewardkit.registry import get_reward_info

    grid = board[dimensions].astype(float).to_numpy()
    positions = np.full(grid.shape, np.nan)
    scales = []
    for column, name in enumerate(dimensions):
        values = grid[:, column]
        low = high = math.nan
        if name in VBENCH_DIMENSIONS:
            low, high, _ = VBENCH_DIMENSIONS[name]
            scales.append("vbench")
        else:
            try:
                low, high = get_reward_info(name).score_range
            except (ValueError, AttributeError):
                pass
            if math.isfinite(low) and math.isfinite(high) and high > low:
                scales.append("range")
            else:
                low, high = np.nanmin(values), np.nanmax(values)
                scales.append("board")
        if high > low:
            positions[:, column] = np.clip((values - low) / (high - low), 0.0, 1.0)
        else:
            positions[:, column] = np.where(np.isnan(values), np.nan, 0.5)
    return positions, scales


# Pastel ends of RdYlGn keep the printed values legible: position 0 -> cmap(0.1), 1 -> cmap(0.9).
COLOUR_MAP, COLOUR_LIMITS = "RdYlGn", (-0.125, 1.125)


def plot_board(board: pd.DataFrame, key: str, columns: list[str], title: str):
    """The ranking bars and the per-dimension heatmap of a ranked board, as a matplotlib Figure whose
    size is grown until every label and title fits inside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = [column for column in columns[2:] if column not in ("total", "quality", "semantic", "mean")]
    models = board["model"].astype(str).tolist()
    height = 3.2 + 0.45 * len(models)
    figure, (bars, heat) = plt.subplots(
        1, 2, figsize=(5 + 0.7 * max(len(dimensions), 4), height), gridspec_kw={"width_ratios": [1, max(len(dimensions), 3) / 3]}
    )
    values = board[key].astype(float) * 100
    bars.barh(models[::-1], values[::-1], color="#4c72b0")
    for position, value in enumerate(values[::-1]):
        bars.text(value, position, f" {value:.2f}", va="center", fontsize=8)
    bars.set_xlim(0, 110)
    bars.set_xlabel(f"{key} (%)")
    figure.suptitle(f"{title}: ranked by {key}")
    if dimensions:
        grid = board[dimensions].astype(float).to_numpy() * 100
        positions, scales = colour_positions(board, dimensions)
        image = heat.imshow(positions, aspect="auto", cmap=COLOUR_MAP, vmin=COLOUR_LIMITS[0], vmax=COLOUR_LIMITS[1],
                            interpolation="nearest")
        marks = {"vbench": "", "range": " †", "board": " ‡"}
        heat.set_xticks(range(len(dimensions)), [name + marks[scale] for name, scale in zip(dimensions, scales, strict=True)],
                        rotation=40, ha="right", fontsize=8)
        heat.set_yticks(range(len(models)), models)
        for row in range(grid.shape[0]):
            for column in range(grid.shape[1]):
                heat.text(column, row, f"{grid[row, column]:.1f}", ha="center", va="center", fontsize=7)
        heat.set_title("per dimension (%)")
        bar = figure.colorbar(image, ax=heat, fraction=0.08, pad=0.03)
        bar.ax.set_ylim(0, 1)
        bar.set_ticks([0, 0.5, 1], labels=["Min", "mid", "Max"])
        notes = ["colour: place on the dimension's scale", "(VBench Min-Max"]
        if "range" in scales:
            notes[-1] += "; † score range"
        if "board" in scales:
            notes[-1] += "; ‡ this board"
        notes[-1] += ")"
        bar.set_label("\n".join(notes), fontsize=7)
    else:
        heat.axis("off")
    # Grow the figure, and keep the axes clear of its edges, until nothing sticks out (long titles,
    # rotated labels of a single column).
    left, bottom, right, top = 0.0, 0.0, 1.0, 1.0
    for _ in range(6):
        figure.tight_layout(rect=(left, bottom, right, top))
        figure.canvas.draw()
        inside = figure.get_tightbbox(figure.canvas.get_renderer())
        width, height_now = figure.get_size_inches()
        over = [max(0.0, -inside.x0), max(0.0, -inside.y0), max(0.0, inside.x1 - width), max(0.0, inside.y1 - height_now)]
        if not any(over):
            break
        new_width, new_height = width + over[0] + over[2] + 0.1, height_now + over[1] + over[3] + 0.1
        figure.set_size_inches(new_width, new_height)
        left = (left * width + over[0] + 0.05) / new_width
        bottom = (bottom * height_now + over[1] + 0.05) / new_height
        right = 1 - ((1 - right) * width + over[2] + 0.05) / new_width
        top = 1 - ((1 - top) * height_now + over[3] + 0.05) / new_height
    return figure


def _plot(board: pd.DataFrame, key: str, columns: list[str], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = plot_board(board, key, columns, title)
    figure.savefig(path, dpi=120)
    plt.close(figure)
