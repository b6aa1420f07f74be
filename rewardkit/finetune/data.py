"""Training data: prompts, video-text pairs from a CSV (columns ``path,prompt``[, ``reward``]) and
preference pairs from a JSONL file (``prompt, chosen, rejected[, margin, tie]``).

Clips (VGen's tools/datasets/video_dataset.py and utils/transforms.py): a CONTIGUOUS window of
``num_frames`` frames at ``data.sample_fps`` from a random start (the source frame rate read from the
container; a clip too short for the window at that rate is read at the highest rate that fits), resized
so that it covers the model's height x width (aspect ratio kept, bilinear, antialiased) and centre-cropped.

Every row is checked before training: an empty prompt, a missing, corrupt or too short video is an error
naming the file and row (``data.invalid_rows = "skip"`` drops such rows instead and prints how many).

Pairs format (one JSON object per line; video paths relative to the file's folder):
``{"prompt": str, "chosen": path, "rejected": path, "margin": float (optional), "tie": bool (optional),
"chosen_patches": [[...]] and "rejected_patches": [[...]] (optional per-patch rewards, rows x cols)}``.
Ties (``tie`` true, or a margin of 0) are dropped by default, as Pick-a-Pic's DPO training does.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rewardkit.errors import UserInputError

__all__ = [
    "PromptDataset",
    "ClipDataset",
    "PairDataset",
    "read_clip",
    "window_indices",
    "build_prompt_dataset",
    "resolve_data_path",
    "collate",
    "TESTING_DATA",
]

TESTING_DATA = "bright-dark"


def resolve_data_path(value: str, key: str) -> str:
    """A data file path; ``testing:bright-dark/pairs.jsonl`` (or ``/clips.csv``) is the synthetic
    bright-vs-dark set of the smoke recipes, written once into the rewardkit cache."""
    if not value.startswith("testing:"):
        return value
    name, _, rest = value.removeprefix("testing:").partition("/")
    if name != TESTING_DATA or rest not in ("pairs.jsonl", "clips.csv"):
        raise UserInputError(f"{key} = {value!r}: the only testing data is testing:{TESTING_DATA}/pairs.jsonl and testing:{TESTING_DATA}/clips.csv")
    from rewardkit.testing import cached_tiny_model

    folder = cached_tiny_model(TESTING_DATA, rest)
    return str(folder / rest)


def window_indices(count: int, num_frames: int, stride: float, start: int) -> list[int]:
    """``num_frames`` frame indices from ``start`` every ``stride`` source frames (rounded)."""
    return [min(count - 1, start + round(index * stride)) for index in range(num_frames)]


def _source_fps(path: str) -> float | None:
    try:
        import av

        with av.open(path) as container:
            rate = container.streams.video[0].average_rate
        return float(rate) if rate else None
    except Exception:  # a frame folder, a GIF without a rate: no frame rate to honour
        return None


def _stride(path: str, count: int, num_frames: int, sample_fps: float) -> float:
    """Source frames per sampled frame: source fps / sample_fps, lowered (to 1 at least) to fit the clip."""
    fps = _source_fps(path) if sample_fps else None
    stride = max(1.0, fps / sample_fps) if fps else 1.0
    if num_frames > 1 and (num_frames - 1) * stride + 1 > count:
        stride = max(1.0, (count - 1) / (num_frames - 1))
    return stride


def read_clip(
    path: str, num_frames: int, height: int, width: int, sample_fps: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A contiguous window ``[F, 3, H, W]`` in [0, 1] from a random start, resized to cover and centre-cropped."""
    from rewardkit.video.io import probe, read_frames

    count = probe(path).num_frames
    if count < num_frames:
        raise UserInputError(f"{path!r} has {count} frames, fewer than model.num_frames = {num_frames}")
    stride = _stride(path, count, num_frames, sample_fps)
    span = round((num_frames - 1) * stride) + 1
    start = int(torch.randint(0, count - span + 1, (1,), generator=generator)) if count > span else 0
    frames = read_frames(path, window_indices(count, num_frames, stride, start))
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    scale = max(height / video.shape[-2], width / video.shape[-1])
    size = (max(height, math.ceil(video.shape[-2] * scale - 1e-6)), max(width, math.ceil(video.shape[-1] * scale - 1e-6)))
    video = torch.nn.functional.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return video[..., top:top + height, left:left + width].clamp(0, 1).contiguous()


def _video_problem(path: str, num_frames: int) -> str | None:
    """Why a video cannot be trained on, or None."""
    from rewardkit.video.io import DecodeError, probe

    try:
        count = probe(path).num_frames
    except (FileNotFoundError, ValueError, OSError, DecodeError) as error:
        return f"the video cannot be read ({error})"
    if count < num_frames:
        return f"the video has {count} frames, fewer than model.num_frames = {num_frames}"
    return None


def _check_rows(source: str, rows: Sequence[tuple[int, list[str], str]], num_frames: int, invalid_rows: str) -> list[int]:
    """Indices of the usable rows; ``rows`` = (row number, video paths, prompt). Errors name file and row."""
    keep, skipped = [], []
    for position, (number, paths, prompt) in enumerate(rows):
        problem = "the prompt is empty" if not prompt.strip() else None
        if problem is None:
            problem = next((f"{path}: {p}" for path in paths if (p := _video_problem(path, num_frames))), None)
        if problem is None:
            keep.append(position)
        elif invalid_rows == "skip":
            skipped.append(number)
        else:
            raise UserInputError(
                f"{source} row {number}: {problem}. Fix or remove the row, or set data.invalid_rows = \"skip\" to drop such rows"
            )
    if skipped:
        print(f"rewardkit finetune: skipped {len(skipped)} invalid row(s) of {source} (rows {skipped[:10]})", file=sys.stderr)
    if not keep:
        raise UserInputError(f"{source} has no usable rows")
    return keep


class PromptDataset(torch.utils.data.Dataset):
    def __init__(self, prompts: list[str]) -> None:
        self.prompts = list(prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"prompt": self.prompts[index], "video": None}


class ClipDataset(torch.utils.data.Dataset):
    """Rows of a ``path,prompt`` CSV; items: the prompt, its clip ``[F, 3, H, W]`` (``read_clip``), its
    path and, when asked, its ``reward`` column."""

    def __init__(
        self, csv_path: str | Path, num_frames: int, height: int, width: int, sample_fps: float = 8.0,
        invalid_rows: str = "error", need_reward: bool = False, read_videos: bool = True,
    ) -> None:
        csv_path = Path(resolve_data_path(str(csv_path), "data.csv"))
        if not csv_path.is_file():
            raise FileNotFoundError(f"data.csv {str(csv_path)!r} not found; it needs columns path,prompt")
        table = pd.read_csv(csv_path, keep_default_na=False)
        columns = {"path", "prompt"} | ({"reward"} if need_reward else set())
        if not columns <= set(table.columns):
            raise UserInputError(f"data.csv {str(csv_path)!r} needs columns {','.join(sorted(columns))}; it has {', '.join(table.columns)}")
        if table.empty:
            raise UserInputError(f"data.csv {str(csv_path)!r} has no rows")
        paths = [path if Path(path).is_absolute() else str(csv_path.parent / path) for path in table["path"].astype(str)]
        prompts = table["prompt"].astype(str).tolist()
        rows = [(index + 2, [path], prompt) for index, (path, prompt) in enumerate(zip(paths, prompts, strict=True))]  # line 1 = header
        keep = _check_rows(f"data.csv {str(csv_path)!r}", rows, num_frames, invalid_rows)
        self.paths, self.prompts = [paths[i] for i in keep], [prompts[i] for i in keep]
        self.rewards = [float(table["reward"].iloc[i]) for i in keep] if need_reward else None
        self.num_frames, self.height, self.width, self.sample_fps = num_frames, height, width, sample_fps
        self.read_videos = read_videos

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``read_videos = False``: the path only (an objective that caches latents reads each video once)."""
        video = read_clip(self.paths[index], self.num_frames, self.height, self.width, self.sample_fps) if self.read_videos else None
        item = {"prompt": self.prompts[index], "video": video, "path": self.paths[index]}
        if self.rewards is not None:
            item["reward"] = self.rewards[index]
        return item


class PairDataset(torch.utils.data.Dataset):
    """Preference pairs from a JSONL file (format in the module docstring)."""

    def __init__(
        self, jsonl_path: str | Path, num_frames: int, height: int, width: int, sample_fps: float = 8.0,
        invalid_rows: str = "error", keep_ties: bool = False, min_margin: float = 0.0,
    ) -> None:
        jsonl_path = Path(resolve_data_path(str(jsonl_path), "data.pairs"))
        if not jsonl_path.is_file():
            raise FileNotFoundError(f"data.pairs {str(jsonl_path)!r} not found; write it with `rewardkit pairs RESULTS --out pairs.jsonl`")
        records, rows, dropped = [], [], 0
        for number, line in enumerate(jsonl_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                prompt, chosen, rejected = str(record["prompt"]), str(record["chosen"]), str(record["rejected"])
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise UserInputError(f"data.pairs {str(jsonl_path)!r} line {number}: not a pair object with prompt, chosen, rejected ({error})") from None
            margin = record.get("margin")
            if not keep_ties and (record.get("tie", False) or margin is not None and abs(float(margin)) <= min_margin):
                dropped += 1
                continue
            paths = [path if Path(path).is_absolute() else str(jsonl_path.parent / path) for path in (chosen, rejected)]
            records.append({**record, "prompt": prompt, "chosen": paths[0], "rejected": paths[1]})
            rows.append((number, paths, prompt))
        if dropped:
            print(f"rewardkit finetune: dropped {dropped} tied pair(s) of {str(jsonl_path)!r} (data ties; see objective.keep_ties)", file=sys.stderr)
        if not records:
            raise UserInputError(f"data.pairs {str(jsonl_path)!r} has no usable pairs (ties are dropped unless objective.keep_ties = true)")
        keep = _check_rows(f"data.pairs {str(jsonl_path)!r}", rows, num_frames, invalid_rows)
        self.records = [records[i] for i in keep]
        self.prompts = [record["prompt"] for record in self.records]
        self.num_frames, self.height, self.width, self.sample_fps = num_frames, height, width, sample_fps

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The prompt, the two video paths (the objective reads and encodes each video once) and any
        per-patch rewards."""
        record = self.records[index]
        item: dict[str, Any] = {"prompt": record["prompt"], "chosen_path": record["chosen"], "rejected_path": record["rejected"]}
        for side in ("chosen", "rejected"):
            if f"{side}_patches" in record:
                item[f"{side}_patches"] = torch.tensor(record[f"{side}_patches"], dtype=torch.float32)
        return item


def build_prompt_dataset(recipe, clips: bool = False, need_reward: bool = False) -> PromptDataset | ClipDataset:
    """The recipe's prompts (CSV prompts, or the inline ones), or its CSV clips when ``clips``."""
    data, model = recipe.data, recipe.model
    if data.csv:
        dataset = ClipDataset(data.csv, model.num_frames, model.height, model.width, data.sample_fps, data.invalid_rows, need_reward)
        return dataset if clips else PromptDataset(dataset.prompts)
    return PromptDataset(data.prompts)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Lists for strings, stacked tensors for tensors, a tensor for numbers; ``videos`` = the clips or None."""
    batch: dict[str, Any] = {"prompts": [item["prompt"] for item in items]}
    for key in items[0]:
        if key == "prompt":
            continue
        values = [item[key] for item in items]
        if key == "video":
            batch["videos"] = None if values[0] is None else torch.stack(values)
        elif torch.is_tensor(values[0]):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, float)):
            batch[key] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[key] = values
    return batch
