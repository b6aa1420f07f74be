"""Results of the scoring engine: the table's columns, the writer that appends rows as they come (a
journal, for Parquet a ``.partial.jsonl`` beside it; with several processes one ``OUT.rankR.jsonl``
journal per process), and reading earlier results so a rerun resumes."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardkit.errors import UserInputError

__all__ = ["COLUMNS", "ResultsWriter", "combine_results", "shard_journal"]

COLUMNS = [
    "path", "prompt", "reward", "options", "score", "n_frames", "status", "error", "warning",
    "seconds", "rewardkit_version", "weights_sha256", "backend",
]


class ResultsWriter:
    """Appends rows to CSV or JSONL as they come (Parquet: to a JSONL journal, converted at the end).

    ``shard``: this process's rank among several; it appends to its own journal ``shard_journal(out,
    shard)`` and the main process writes ``out`` from every journal. Earlier rows are read from ``out``
    and every journal beside it, whatever process count wrote them, so a rerun resumes after any crash.
    """

    def __init__(
        self, out: str | os.PathLike[str] | None, columns: Sequence[str] = COLUMNS, *, shard: int | None = None
    ) -> None:
        self.out = Path(out) if out is not None else None
        self.columns = list(columns)
        if self.out is None:
            self.journal = None
        else:
            suffix = self.out.suffix.lower()
            if suffix not in (".csv", ".jsonl", ".parquet"):
                raise UserInputError(f"--out must end in .csv, .jsonl or .parquet, got {str(self.out)!r}")
            self.journal = self.out if suffix in (".csv", ".jsonl") else self.out.with_name(self.out.name + ".partial.jsonl")
            if shard is not None:
                self.journal = shard_journal(self.out, shard)
        self._handle = None
        self._writer = None

    def existing(self) -> pd.DataFrame:
        """Rows already written by earlier runs (the final file plus any unfinished journal)."""
        frames = []
        if self.out is not None and self.out.exists() and self.out.stat().st_size > 0:
            frames.append(_read_table(self.out))
        frames.extend(_read_table(journal) for journal in self._journals())
        if not frames:
            return pd.DataFrame(columns=self.columns)
        table = pd.concat(frames, ignore_index=True)
        return table.drop_duplicates(subset=["path", "reward", "options"], keep="last")

    def write(self, row: dict[str, Any]) -> None:
        if self.journal is None:
            return
        if self._handle is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            new_file = not self.journal.exists() or self.journal.stat().st_size == 0
            if self.journal.suffix == ".csv" and not new_file:
                self._widen_csv_header()
            self._handle = open(self.journal, "a", newline="", encoding="utf-8")
            if self.journal.suffix == ".csv":
                self._writer = csv.DictWriter(self._handle, fieldnames=self.columns)
                if new_file:
                    self._writer.writeheader()
        if self._writer is not None:
            self._writer.writerow(row)
        else:
            record = {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
            self._handle.write(json.dumps(record, default=str) + "\n")
        self._handle.flush()

    def _widen_csv_header(self) -> None:
        """Rewrite an earlier CSV whose columns differ (other rewards, other outputs) with the union."""
        with open(self.journal, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
        if header == self.columns:
            return
        self.columns = header + [column for column in self.columns if column not in header]
        earlier = _read_table(self.journal).reindex(columns=self.columns)
        temporary = self.journal.with_name(self.journal.name + ".tmp")
        earlier.to_csv(temporary, index=False)
        temporary.replace(self.journal)

    def close(self, final: pd.DataFrame | None) -> None:
        """Close the journal; given the final table, rewrite ``out`` compacted (one row per key)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._writer = None
        if self.out is None or final is None:
            return
        temporary = self.out.with_name(self.out.name + ".tmp")
        if self.out.suffix.lower() == ".csv":
            final.to_csv(temporary, index=False)
        elif self.out.suffix.lower() == ".jsonl":
            final.to_json(temporary, orient="records", lines=True)
        else:
            final.to_parquet(temporary, index=False)
        temporary.replace(self.out)
        for journal in self._journals():
            journal.unlink()

    def _journals(self) -> list[Path]:
        """Journals beside ``out`` besides ``out`` itself: this writer's and every process's, oldest first."""
        if self.out is None:
            return []
        found = {self.journal, *self.out.parent.glob(f"{glob.escape(self.out.name)}.rank*.jsonl")} - {self.out}
        return sorted((path for path in found if path.exists()), key=lambda path: path.stat().st_mtime_ns)


def shard_journal(out: str | os.PathLike[str], rank: int) -> Path:
    """The journal process ``rank`` appends to when several processes write ``out`` (always JSONL)."""
    out = Path(out)
    return out.with_name(f"{out.name}.rank{rank}.jsonl")


def _read_table(path: Path) -> pd.DataFrame:
    """Read earlier results; a last row cut short by a killed process is dropped (it is redone)."""
    suffix = path.suffix.lower()
    text_columns = {"prompt": str, "error": str, "warning": str, "weights_sha256": str, "options": str}
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        table = pd.read_csv(path, dtype=text_columns, keep_default_na=False, on_bad_lines="skip")
        table["score"] = pd.to_numeric(table["score"], errors="coerce")
        return table
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    table = pd.DataFrame(records)
    return table.reindex(columns=list(dict.fromkeys([*COLUMNS, *table.columns])))


def combine_results(done: pd.DataFrame, new: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Earlier rows plus this run's, one row per (path, reward, options), the newest winning."""
    parts = [frame for frame in (done, new) if not frame.empty]
    if not parts:
        return pd.DataFrame(columns=columns)
    combined = pd.concat(parts, ignore_index=True).reindex(columns=columns)
    return combined.drop_duplicates(subset=["path", "reward", "options"], keep="last").reset_index(drop=True)
