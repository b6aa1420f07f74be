"""Inputs of the scoring engine: which files to score (discovery) and each file's prompt."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import UserInputError
from rewardkit.parsing import natural_key
from rewardkit.scoring.results import escape_text
from rewardkit.video.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = [
    "InputWarning", "MediaItem", "collect_media", "find_prompt", "is_frame_folder", "load_prompt_table", "prompt_for",
    "prompt_table", "read_manifest",
]

_VBENCH_NAME = re.compile(r"^(?P<prompt>.+)-(?P<index>\d+)$")
_FRAME_NAME = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")



class InputWarning(UserWarning):
    """Something about the inputs that the user should hear of (the command line prints these)."""


@dataclass(frozen=True)
class MediaItem:
    """One input: an image, a video file or a frame folder (``kind`` None: not media, a failed row).
    ``prompt_problem`` says why a prompt source was there but unusable (an unreadable sidecar, ...)."""

    path: str
    kind: str | None
    prompt: str | None
    prompt_problem: str = ""


def collect_media(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[str]]:
    """Expand files and folders into media paths (sorted per folder) and what was skipped: non-media files,
    and folders that could not be read (each also a warning).

    A folder is walked recursively and each image in it is scored on its own, except a frame folder
    (``is_frame_folder``), which is one video; a folder named here that is itself a frame folder is one
    video too. A non-media file named explicitly, or a broken link, is kept, so that it becomes a failed row
    rather than vanishing.
    """
    found: list[str] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{str(path)!r} does not exist")
        if not path.is_dir() or is_frame_folder(path):
            found.append(str(path))
            continue

        def unreadable(error: OSError) -> None:
            skipped.append(str(error.filename))
            warnings.warn(
                f"cannot read the folder {error.filename!r} ({error.strerror or error}): its files are not scored",
                InputWarning,
                stacklevel=4,
            )

        for root, directories, files in os.walk(path, onerror=unreadable):
            directories.sort()
            root_path = Path(root)
            for directory in list(directories):
                if is_frame_folder(root_path / directory):
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


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """A folder of numbered frames, scored as one video: it directly holds at least two images and nothing
    else (hidden entries aside), all with one extension and named the same text followed by a number
    (``frame_000.png``, ``frame_001.png``, ... or ``0001.jpg``, ``0002.jpg``, ...). Any other folder
    holding images is a folder of separate images, so photos are never merged into a video."""
    try:
        with os.scandir(path) as entries:
            names = [(entry.name, entry.is_file()) for entry in entries if not entry.name.startswith(".")]
    except OSError:
        return False
    if len(names) < 2 or not all(is_file for _, is_file in names):
        return False
    shapes = set()
    for name, _ in names:
        stem, extension = os.path.splitext(name)
        match = _FRAME_NAME.match(stem)
        if extension.lower() not in IMAGE_EXTENSIONS or match is None:
            return False
        shapes.add((match.group("prefix"), extension.lower()))
    return len(shapes) == 1


def _is_sidecar(file: Path) -> bool:
    """A prompt file ``NAME.txt`` next to media ``NAME.ext`` or a frame folder ``NAME/``, or a prompt table."""
    if file.suffix.lower() in (".csv", ".jsonl", ".json"):
        return True
    if file.suffix.lower() != ".txt":
        return False
    stem = file.with_suffix("")
    return stem.is_dir() or any(os.path.lexists(stem.with_suffix(extension)) for extension in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)


def load_prompt_table(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """Read a CSV (columns ``path,prompt``) or JSONL (``{"path": ..., "prompt": ...}``) prompt file, UTF-8
    with or without a byte-order mark.

    Keys are resolved relative to the table's folder and stored as absolute paths, plus bare file names.
    A row whose prompt is missing, null or blank maps its file to None: that file has no prompt. A path
    listed twice is a warning (the last row wins).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserInputError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{data[error.start]:02x}); save the prompt file as UTF-8"
        ) from None
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or not {"path", "prompt"} <= set(reader.fieldnames):
            raise UserInputError(f"{path} needs the fields 'path' and 'prompt' (the CSV's first line names the columns), got {reader.fieldnames}")
        rows = [(reader.line_num, row) for row in reader]
    elif path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise UserInputError(f"{path}:{number} is not valid JSON ({error.msg})") from None
    else:
        raise UserInputError(f"prompt file {str(path)!r} must be .csv (columns path,prompt) or .jsonl")
    table: dict[str, str | None] = {}
    first_line: dict[str, int] = {}
    duplicates: list[tuple[str, int, int]] = []
    for number, row in rows:
        if not isinstance(row, Mapping) or not row.get("path"):
            raise UserInputError(f"{path} line {number} needs the field 'path' (and 'prompt'), got {row!r}")
        key = Path(str(row["path"]))
        absolute = os.path.realpath(key if key.is_absolute() else path.parent / key)
        prompt = row.get("prompt")
        prompt = str(prompt) if prompt is not None and str(prompt).strip() else None
        if absolute in first_line:
            duplicates.append((str(row["path"]), first_line[absolute], number))
        first_line[absolute] = number
        table[absolute] = prompt
        table.setdefault(key.name, prompt)
    if duplicates:
        name, first, again = duplicates[0]
        more = f" and {len(duplicates) - 1} more" if len(duplicates) > 1 else ""
        warnings.warn(
            f"{path}: {name!r} is listed on lines {first} and {again}{more}; the last row wins",
            InputWarning,
            stacklevel=2,
        )
    return table


def prompt_for(path: str, table: Mapping[str, str | None]) -> tuple[str | None, str]:
    """A file's prompt and, when it has none, why a source that was there could not give one: the prompt
    table, then a sidecar ``NAME.txt``, then a VBench-style ``{prompt}-{i}`` name."""
    file = Path(path)
    for key in (os.path.realpath(file), file.name):
        if key in table:
            prompt = table[key]
            return prompt, "" if prompt is not None else f"the prompt table's row for {escape_text(path)} has no prompt"
    is_file = file.is_file()
    sidecar = file.with_suffix(".txt") if is_file or file.suffix else file.parent / f"{file.name}.txt"
    if sidecar.is_file():
        try:
            return sidecar.read_bytes().decode("utf-8-sig").strip(), ""
        except UnicodeDecodeError as error:
            return None, f"the prompt file {escape_text(str(sidecar))} is not UTF-8 text (byte {error.start}); save it as UTF-8"
        except OSError as error:
            return None, f"cannot read the prompt file {escape_text(str(sidecar))} ({error.strerror or error})"
    match = _VBENCH_NAME.match(file.stem if is_file or file.suffix else file.name)
    return (match.group("prompt"), "") if match else (None, "")


def find_prompt(path: str, table: Mapping[str, str | None]) -> str | None:
    """A file's prompt (see ``prompt_for``), None when it has none; an unusable source is a warning."""
    prompt, problem = prompt_for(path, table)
    if problem:
        warnings.warn(problem, InputWarning, stacklevel=2)
    return prompt


def prompt_table(prompts: str | os.PathLike[str] | Mapping[str, str | None] | None) -> dict[str, str | None]:
    """A prompt table from a file (see ``load_prompt_table``), a mapping of paths to prompts, or None."""
    if prompts is None:
        return {}
    if isinstance(prompts, Mapping):
        return {os.path.realpath(key) if os.path.lexists(key) else key: value for key, value in prompts.items()}
    return load_prompt_table(prompts)
