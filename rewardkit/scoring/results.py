"""Results of the scoring engine: the table's columns, the writer that appends rows as they come (a
journal, for Parquet a ``.partial.jsonl`` beside it; with several processes one ``OUT.rankR.jsonl``
journal per process), and reading earlier results so a rerun resumes.

The journal is read record by record: a record cut short (a full disk, a killed process) or one that does
not parse is dropped, and its file is scored again; a torn tail is cut off before new rows are appended.
Text that is not valid UTF-8 (file names with undecodable bytes, prompts with lone surrogates) is written
in an escaped form (``escape_text``). The output is locked (``OUT.lock``) while a run writes it; with
several processes the main one (which writes ``out``) holds ``OUT.lock`` and every other process locks
its own journal (``OUT.rankR.lock``), so two runs on one ``--out`` never interleave.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardkit.errors import UserInputError

__all__ = [
    "COLUMNS", "ResultsWriteError", "ResultsWriter", "combine_results", "escape_text", "journal_records", "read_journal",
    "row_key", "shard_journal",
]

COLUMNS = [
    "path", "prompt", "reward", "options", "score", "n_frames", "status", "error", "warning",
    "seconds", "rewardkit_version", "weights_sha256", "backend",
]
STATUSES = ("ok", "failed", "skipped")
TEXT_COLUMNS = (
    "path", "prompt", "reward", "options", "status", "error", "warning", "rewardkit_version", "weights_sha256", "backend",
)


class ResultsWriteError(UserInputError):
    """The results file cannot be written (full disk, read-only folder, locked by another run)."""


def escape_text(text: str) -> str:
    """``text`` as valid UTF-8: a file name's undecodable bytes (Python's surrogate escapes ``\\udcHH``)
    become ``\\xHH`` and any other lone surrogate ``\\uXXXX``; valid text is returned unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escape_char(char) for char in text)
    return text


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return char


def row_key(path: str) -> str:
    """What resume and deduplication compare: the resolved absolute path (symlinks followed, ``..``
    removed), escaped as in the table, so ``myvids/a.mp4`` and ``/abs/myvids/a.mp4`` are one file."""
    return escape_text(os.path.realpath(path))


class ResultsWriter:
    """Appends rows to CSV or JSONL as they come (Parquet: to a JSONL journal, converted at the end).

    ``open()`` checks ``out`` (not a folder, its folder writable) and locks it; call it before loading any
    model. ``close()`` releases the lock.

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
            if self.out.is_dir():
                raise ResultsWriteError(f"--out {str(self.out)!r} is a folder; give a file name such as {str(self.out / 'results.csv')!r}")
            suffix = self.out.suffix.lower()
            if suffix not in (".csv", ".jsonl", ".parquet"):
                raise UserInputError(f"--out must end in .csv, .jsonl or .parquet, got {str(self.out)!r}")
            self.journal = self.out if suffix in (".csv", ".jsonl") else self.out.with_name(self.out.name + ".partial.jsonl")
            if shard is not None:
                self.journal = shard_journal(self.out, shard)
        self.shard = shard
        self._handle: io.TextIOWrapper | None = None
        self._csv = self.journal is not None and self.journal.suffix == ".csv"
        self._lock: int | None = None
        self.broken = False  # a write failed: the file is left as it is for the next run

    # ------------------------------------------------------------------------------ checks and the lock

    def open(self) -> None:
        """Check that ``out`` can be written and take the exclusive lock (``OUT.lock``; ``OUT.rankR.lock``
        for a process other than the main one of several) (exit 2 if not)."""
        if self.out is None or self._lock is not None:
            return
        lock_path = self._lock_path()
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            while True:
                descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                if not _try_lock(descriptor):
                    _close_quietly(descriptor)
                    raise ResultsWriteError(
                        f"another rewardkit run is writing {self.out} (it holds the lock {lock_path}{_holder(lock_path)}); "
                        "wait for it to finish or choose another --out"
                    )
                if _same_file(descriptor, lock_path):
                    break
                _close_quietly(descriptor)  # removed by a run that just finished: lock the new file
            self._lock = descriptor
            _HELD_LOCKS.add(descriptor)
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            if self.journal is not None and self.journal.exists() and not os.access(self.journal, os.W_OK):
                raise PermissionError(13, "Permission denied", str(self.journal))
        except ResultsWriteError:
            raise
        except OSError as error:
            self._release()
            raise ResultsWriteError(
                f"cannot write the results file {str(self.out)!r}: {error.strerror or error} "
                f"({error.filename or self.out.parent}); choose a writable --out"
            ) from None

    def _release(self) -> None:
        if self._lock is None:
            return
        lock_path = self._lock_path()
        try:
            lock_path.unlink()  # unlinked while held: a run waiting on the old file retries on a new one
        except OSError:
            pass
        _HELD_LOCKS.discard(self._lock)
        _close_quietly(self._lock)
        self._lock = None

    def _lock_path(self) -> Path:
        if self.shard:  # a process other than the main one: its own journal's lock
            return self.journal.with_suffix(".lock")
        return self.out.with_name(self.out.name + ".lock")

    # --------------------------------------------------------------------------------------- reading

    def existing(self) -> pd.DataFrame:
        """Rows already written by earlier runs (the final file plus any unfinished journal); records cut
        short or unparsable are left out (and cut off the journal's end before anything is appended)."""
        frames = []
        if self.out is not None and self.out.exists() and self.out.stat().st_size > 0:
            frames.append(read_journal(self.out)[0] if self.out.suffix.lower() != ".parquet" else pd.read_parquet(self.out))
        frames.extend(read_journal(journal)[0] for journal in self._journals())
        frames = [frame for frame in frames if not frame.empty]
        if not frames:
            return pd.DataFrame(columns=self.columns)
        return _deduplicate(pd.concat(frames, ignore_index=True))

    # --------------------------------------------------------------------------------------- writing

    def write(self, row: dict[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            if self._handle is None:
                self._start()
            if self._csv:
                buffer = io.StringIO()
                csv.DictWriter(buffer, fieldnames=self.columns).writerow(row)
                text = buffer.getvalue()
            else:
                record = {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
                text = json.dumps(record, default=str, ensure_ascii=False) + "\n"
            self._append(text)
        except OSError as error:
            self.broken = True
            raise self._failure(error) from None

    def _start(self) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        if self.journal.exists():
            _, end = read_journal(self.journal)
            if end < self.journal.stat().st_size:
                os.truncate(self.journal, end)  # a torn last record: drop it before appending
        new_file = not self.journal.exists() or self.journal.stat().st_size == 0
        if self._csv and not new_file:
            self._widen_csv_header()
        self._handle = open(self.journal, "a", newline="", encoding="utf-8")
        if self._csv and new_file:
            self._append(",".join(_csv_field(column) for column in self.columns) + "\r\n")

    def _append(self, text: str) -> None:
        """Append one record and flush it to the file."""
        self._handle.write(text)
        self._handle.flush()

    def _failure(self, error: OSError) -> ResultsWriteError:
        return ResultsWriteError(
            f"cannot write {self.journal}: {error.strerror or error}. The rows written so far are kept; "
            "free some space (or fix the folder) and run the same command again to resume"
        )

    def _widen_csv_header(self) -> None:
        """Rewrite an earlier CSV whose columns differ (other rewards, other outputs) with the union."""
        with open(self.journal, newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        if header == self.columns:
            return
        self.columns = header + [column for column in self.columns if column not in header]
        earlier = read_journal(self.journal)[0].reindex(columns=self.columns)
        self._replace(self.journal, lambda temporary: earlier.to_csv(temporary, index=False))

    def _replace(self, target: Path, write: Any) -> None:
        """Write ``target`` through ``TARGET.tmp`` and a rename; on failure no ``.tmp`` is left behind."""
        temporary = target.with_name(target.name + ".tmp")
        try:
            write(temporary)
            temporary.replace(target)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            self.broken = True
            raise self._failure(error) from None

    def close(self, final: pd.DataFrame | None) -> None:
        """Close the journal; given the final table, rewrite ``out`` compacted (one row per key)."""
        try:
            if self._handle is not None:
                handle, self._handle = self._handle, None
                try:
                    handle.close()
                except OSError as error:
                    self.broken = True
                    raise self._failure(error) from None
            if self.out is None or final is None or self.broken:
                return
            suffix = self.out.suffix.lower()
            if suffix == ".csv":
                self._replace(self.out, lambda temporary: final.to_csv(temporary, index=False))
            elif suffix == ".jsonl":
                self._replace(self.out, lambda temporary: write_jsonl(final, temporary))
            else:
                self._replace(self.out, lambda temporary: final.to_parquet(temporary, index=False))
            for journal in self._journals():
                journal.unlink()
        finally:
            self._release()

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


def write_jsonl(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """One JSON object per row: floats as Python writes them (they read back exactly), NaN as null,
    slashes unescaped."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for record in table.to_dict(orient="records"):
            clean = {key: _json_value(value) for key, value in record.items()}
            handle.write(json.dumps(clean, default=str, ensure_ascii=False) + "\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return value


def _csv_field(text: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


# Lock descriptors this process holds. A forked child (a decoding worker) closes its copies at once: an
# flock belongs to the open file, so a worker orphaned by a killed run would otherwise keep the output locked.
_HELD_LOCKS: set[int] = set()


def _close_held_locks_in_child() -> None:
    for descriptor in _HELD_LOCKS:
        _close_quietly(descriptor)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_held_locks_in_child)


def _try_lock(descriptor: int) -> bool:
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        return ""
    return f", process {pid}" if pid.isdigit() else ""


def _close_quietly(descriptor: int) -> None:
    try:
        os.close(descriptor)
    except OSError:
        pass


# ------------------------------------------------------------------------------------- the journal


def journal_records(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """The complete, parsable records of a CSV or JSONL results file (CSV values as text), and the byte
    offset where its last complete record ends (what follows is a torn record). Unparsable records are
    left out."""
    data = Path(path).read_bytes()
    return _csv_records(data, Path(path)) if Path(path).suffix.lower() == ".csv" else _jsonl_records(data)


def read_journal(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, int]:
    """``journal_records`` as a table, numbers as numbers."""
    records, end = journal_records(path)
    table = pd.DataFrame(records)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS), end
    for column in table.columns:
        if column not in TEXT_COLUMNS:
            table[column] = _numbers(table[column])
    table = table.reindex(columns=list(dict.fromkeys([*COLUMNS, *table.columns])))
    return table, end


def _numbers(values: pd.Series) -> pd.Series:
    """A CSV column of numbers as numbers, parsed exactly as Python does (``float(repr(x)) == x``): ints
    when every value is one, floats when every value is a float or empty; otherwise left as text."""
    if values.map(lambda value: isinstance(value, (int, float))).all():
        return values
    texts = values.map(lambda value: "" if value is None else str(value))
    try:
        if (texts != "").all():
            return pd.Series([int(text) for text in texts], index=values.index)
    except ValueError:
        pass
    try:
        return pd.Series([float(text) if text else math.nan for text in texts], index=values.index, dtype=float)
    except ValueError:
        return values


def _valid(record: dict[str, Any]) -> bool:
    """A row the engine could have written: text keys, a known status, an ``ok`` row with a finite score."""
    if not all(isinstance(record.get(key), str) for key in ("path", "reward", "options")):
        return False
    if record.get("status") not in STATUSES:
        return False
    if record["status"] == "ok":
        try:
            return math.isfinite(float(record.get("score")))
        except (TypeError, ValueError):
            return False
    return True


def _csv_records(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Split CSV bytes into records (a newline outside quotes ends one); parse each on its own. A torn
    header line is no table at all; a complete header of another table is an error (nothing is cut)."""
    records: list[dict[str, Any]] = []
    header: list[str] | None = None
    start = end = 0
    quotes = 0
    position = 0
    for line in data.split(b"\n")[:-1]:  # the last piece has no newline: torn, or empty
        position += len(line) + 1
        quotes += line.count(b'"')
        if quotes % 2:
            continue  # inside a quoted field that holds a newline
        record, start, quotes, end = data[start:position], position, 0, position
        try:
            fields = next(csv.reader(io.StringIO(record.decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            continue
        if header is None:
            header = fields
            if not {"path", "reward", "options", "status"} <= set(header):
                raise ResultsWriteError(
                    f"{path} is not a rewardkit results table (its first line names no path, reward, options and "
                    "status columns); choose another --out"
                )
            continue
        if len(fields) != len(header):
            continue
        row = dict(zip(header, fields, strict=True))
        if _valid(row):
            records.append(row)
    return records, end


def _jsonl_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    end = 0
    for line in data.split(b"\n")[:-1]:
        end += len(line) + 1
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(record, dict) and _valid(record):
            records.append({key: "" if value is None and key in TEXT_COLUMNS and key != "prompt" else value for key, value in record.items()})
    return records, end


def _deduplicate(table: pd.DataFrame) -> pd.DataFrame:
    keys = table["path"].map(row_key)
    return table[~pd.DataFrame({"k": keys, "r": table["reward"], "o": table["options"]}).duplicated(keep="last")]


def combine_results(done: pd.DataFrame, new: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Earlier rows plus this run's, one row per (resolved path, reward, options), the newest winning."""
    parts = [frame for frame in (done, new) if not frame.empty]
    if not parts:
        return pd.DataFrame(columns=columns)
    combined = pd.concat(parts, ignore_index=True).reindex(columns=columns)
    return _deduplicate(combined).reset_index(drop=True)
