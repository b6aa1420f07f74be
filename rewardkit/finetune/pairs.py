"""Preference pairs from a ``rewardkit score`` results table with several videos per prompt:
``rewardkit pairs RESULTS --out pairs.jsonl [--reward NAME] [--margin M] [--rule best-worst|all]``.

Per prompt (rows with status ok of the chosen reward): ``best-worst`` pairs the highest- with the
lowest-scored video (flow_grpo's DPO pairing); ``all`` pairs every two videos whose scores differ. A
pair whose score difference is at most ``margin`` is a tie and is not written (the count is reported).
Lines follow the format of ``rewardkit.finetune.data`` (prompt, chosen, rejected, margin, tie; video
paths relative to the output's folder when they are below it); a patch reward's per-patch columns
(``NAME_ROW_COL``) become ``chosen_patches`` / ``rejected_patches`` for ``gran_dpo``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pandas as pd

from rewardkit.errors import UserInputError

__all__ = ["read_results", "build_pairs", "write_pairs"]


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A results table written by ``rewardkit score --out`` (.csv, .jsonl or .parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results table {str(path)!r} not found; write one with `rewardkit score VIDEOS --out results.csv`")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path, dtype={"prompt": str, "options": str}, keep_default_na=False)
    elif suffix == ".jsonl":
        table = pd.read_json(path, lines=True, dtype={"prompt": str})
    elif suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        raise UserInputError(f"results table {str(path)!r} must be .csv, .jsonl or .parquet")
    missing = {"path", "prompt", "reward", "score", "status"} - set(table.columns)
    if missing:
        raise UserInputError(f"{str(path)!r} is not a rewardkit score table: no column(s) {', '.join(sorted(missing))}")
    return table


def _patch_grid(table: pd.DataFrame, reward: str) -> list[list[str]] | None:
    found = [(int(m.group(1)), int(m.group(2)), column) for column in table.columns if (m := re.fullmatch(rf"{re.escape(reward)}_(\d+)_(\d+)", column))]
    if not found:
        return None
    rows, cols = max(r for r, _, _ in found) + 1, max(c for _, c, _ in found) + 1
    names = {(r, c): column for r, c, column in found}
    return [[names[(r, c)] for c in range(cols)] for r in range(rows)]


def build_pairs(table: pd.DataFrame, reward: str | None = None, margin: float = 0.0, rule: str = "best-worst") -> tuple[list[dict], int]:
    """Pairs (absolute video paths) and the number of ties left out."""
    if rule not in ("best-worst", "all"):
        raise UserInputError(f"--rule must be best-worst or all, got {rule!r}")
    if margin < 0:
        raise UserInputError(f"--margin must be at least 0, got {margin}")
    ok = table[table["status"] == "ok"]
    rewards = sorted(ok["reward"].astype(str).unique())
    if reward is None:
        if len(rewards) != 1:
            raise UserInputError(f"the table has scores of {len(rewards)} rewards ({', '.join(rewards) or 'none'}); choose one with --reward NAME")
        reward = rewards[0]
    if reward not in rewards:
        raise UserInputError(f"no ok scores of reward {reward!r} in the table; it has: {', '.join(rewards) or 'none'}")
    scored = ok[ok["reward"].astype(str) == reward]
    empty = scored["prompt"].astype(str).str.strip() == ""
    if empty.any():
        raise UserInputError(f"{int(empty.sum())} row(s) have no prompt (e.g. {scored[empty]['path'].iloc[0]!r}); score with --prompts so every video has one")
    grid = _patch_grid(table, reward)
    pairs, ties = [], 0
    for prompt, group in scored.groupby("prompt", sort=True):
        rows = group.drop_duplicates("path").sort_values(["score", "path"], ascending=[False, True])
        if len(rows) < 2:
            continue
        records = list(rows.itertuples(index=False))
        candidates = [(records[0], records[-1])] if rule == "best-worst" else list(itertools.combinations(records, 2))
        for chosen, rejected in candidates:
            difference = float(chosen.score) - float(rejected.score)
            if difference <= margin:
                ties += 1
                continue
            pair = {"prompt": str(prompt), "chosen": str(chosen.path), "rejected": str(rejected.path), "margin": difference, "tie": False}
            if grid is not None:
                pair["chosen_patches"] = [[float(getattr(chosen, column)) for column in row] for row in grid]
                pair["rejected_patches"] = [[float(getattr(rejected, column)) for column in row] for row in grid]
            pairs.append(pair)
    return pairs, ties


def write_pairs(pairs: list[dict], out: str | os.PathLike[str]) -> Path:
    """JSONL, video paths relative to ``out``'s folder when below it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    lines = []
    for pair in pairs:
        record = dict(pair)
        for side in ("chosen", "rejected"):
            path = Path(record[side]).resolve()
            record[side] = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
        lines.append(json.dumps(record))
    out.write_text("".join(line + "\n" for line in lines))
    return out
