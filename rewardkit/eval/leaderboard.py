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

__all__ = ["LEADING_COLUMNS", "add_run", "load_board", "rank", "render"]

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


def _plot(board: pd.DataFrame, key: str, columns: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = [column for column in columns[2:] if column not in ("total", "quality", "semantic", "mean")]
    models = board["model"].astype(str).tolist()
    height = 3.0 + 0.45 * len(models)
    figure, (bars, heat) = plt.subplots(
        1, 2, figsize=(5 + 0.7 * max(len(dimensions), 4), height), gridspec_kw={"width_ratios": [1, max(len(dimensions), 3) / 3]}
    )
    values = board[key].astype(float) * 100
    bars.barh(models[::-1], values[::-1], color="#4c72b0")
    for position, value in enumerate(values[::-1]):
        bars.text(value, position, f" {value:.2f}", va="center", fontsize=8)
    bars.set_xlim(0, 110)
    bars.set_xlabel(f"{key} (%)")
    bars.set_title(f"{title}: ranked by {key}")
    if dimensions:
        grid = board[dimensions].astype(float).to_numpy() * 100
        # Colour by rank within each dimension (dimensions live on different scales); print raw values.
        low, high = np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)
        relative = (grid - low) / np.where(high > low, high - low, 1.0)
        heat.imshow(relative, aspect="auto", cmap="RdYlGn", vmin=-0.4, vmax=1.4)  # pastel ends: text stays legible
        heat.set_xticks(range(len(dimensions)), dimensions, rotation=40, ha="right", fontsize=8)
        heat.set_yticks(range(len(models)), models)
        for row in range(grid.shape[0]):
            for column in range(grid.shape[1]):
                heat.text(column, row, f"{grid[row, column]:.1f}", ha="center", va="center", fontsize=7)
        heat.set_title("per dimension (%), green = best of the board")
    else:
        heat.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
