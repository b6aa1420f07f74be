"""Inputs of the scoring engine: which files to score (discovery) and each file's prompt."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import UserInputError
from rewardkit.parsing import natural_key
from rewardkit.video.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind

__all__ = ["MediaItem", "collect_media", "find_prompt", "load_prompt_table", "prompt_table", "read_manifest"]

_VBENCH_NAME = re.compile(r"^(?P<prompt>.+)-(?P<index>\d+)$")



@dataclass(frozen=True)
class MediaItem:
    """One input: an image, a video file or a frame folder (``kind`` None: not media, a failed row)."""

    path: str
    kind: str | None
    prompt: str | None


def collect_media(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[str]]:
    """Expand files and folders into media paths (sorted per folder) and the non-media files skipped.

    Folders are walked recursively; a sub-folder holding only images is one video (a frame folder).
    A non-media file named explicitly is kept, so that it becomes a failed row rather than vanishing.
    """
    found: list[str] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} does not exist")
        if path.is_file() or media_kind(path) == "video":
            found.append(str(path))
            continue
        for root, directories, files in os.walk(path):
            directories.sort()
            root_path = Path(root)
            for directory in list(directories):
                if media_kind(root_path / directory) == "video":
                    found.append(str(root_path / directory))
                    directories.remove(directory)  # a frame folder is one video; do not walk into it
            for name in sorted(files):
                file = root_path / name
                if name.startswith("."):
                    continue
                if file.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS:
                    found.append(str(file))
                elif not _is_sidecar(file):
                    skipped.append(str(file))
    return sorted(dict.fromkeys(found), key=natural_key), skipped


def read_manifest(path: str | os.PathLike[str]) -> list[str]:
    """The media paths a manifest lists, in its order: a ``.txt`` file of one path a line (blank lines
    and lines starting with ``#`` left out) or a ``.csv`` file with a ``path`` column (other columns, say
    ``prompt``, are ignored). Relative paths are relative to the manifest's folder.

    Entries are taken as listed, never walked or checked here: at scale every process reads only this
    file, and a listed file that is missing or damaged becomes one failed row when it is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise UserInputError(f"manifest {str(path)!r} needs a 'path' column, got {reader.fieldnames}")
            entries = [row["path"] for row in reader if row["path"]]
    elif path.suffix.lower() == ".txt":
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        raise UserInputError(f"manifest {str(path)!r} must be .txt (one path a line) or .csv (a 'path' column)")
    return [entry if Path(entry).is_absolute() else str(path.parent / entry) for entry in entries]


def _is_sidecar(file: Path) -> bool:
    """A prompt file ``NAME.txt`` next to media ``NAME.ext`` or a frame folder ``NAME/``, or a prompt table."""
    if file.suffix.lower() in (".csv", ".jsonl", ".json"):
        return True
    if file.suffix.lower() != ".txt":
        return False
    stem = file.with_suffix("")
    return stem.is_dir() or any(stem.with_suffix(extension).exists() for extension in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)


def load_prompt_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a CSV (columns ``path,prompt``) or JSONL (``{"path": ..., "prompt": ...}``) prompt file.

    Keys are resolved relative to the table's folder and stored as absolute paths, plus bare file names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    rows: list[Mapping[str, Any]]
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise UserInputError(f"{path}:{number} is not valid JSON ({error.msg})") from None
    else:
        raise UserInputError(f"prompt file {str(path)!r} must be .csv (columns path,prompt) or .jsonl")
    table: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping) or "path" not in row or "prompt" not in row:
            raise UserInputError(f"{path} row {number} needs the fields 'path' and 'prompt', got {row!r}")
        key = Path(str(row["path"]))
        absolute = key if key.is_absolute() else path.parent / key
        table[str(absolute.resolve())] = str(row["prompt"])
        table.setdefault(key.name, str(row["prompt"]))
    return table


def find_prompt(path: str, table: Mapping[str, str]) -> str | None:
    """A file's prompt: the prompt table, then a sidecar ``NAME.txt``, then a VBench-style ``{prompt}-{i}`` name."""
    file = Path(path)
    for key in (str(file.resolve()), file.name):
        if key in table:
            return table[key]
    sidecar = file.with_suffix(".txt") if file.is_file() else file.parent / f"{file.name}.txt"
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8").strip()
    match = _VBENCH_NAME.match(file.stem if file.is_file() else file.name)
    return match.group("prompt") if match else None


def prompt_table(prompts: str | os.PathLike[str] | Mapping[str, str] | None) -> dict[str, str]:
    """A prompt table from a file (see ``load_prompt_table``), a mapping of paths to prompts, or None."""
    if prompts is None:
        return {}
    if isinstance(prompts, Mapping):
        return {str(Path(key).resolve()) if Path(key).exists() else key: value for key, value in prompts.items()}
    return load_prompt_table(prompts)
