"""Training data: prompts, or video-text pairs from a CSV (columns ``path,prompt``).

Clips are read with ``rewardkit.video.io.read_frames`` at ``num_frames`` evenly spaced frames (first to
last) and resized to the model's height x width (bilinear, antialiased; the aspect ratio is not kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

__all__ = ["PromptDataset", "VideoTextDataset", "build_dataset", "collate"]


class PromptDataset(torch.utils.data.Dataset):
    def __init__(self, prompts: list[str]) -> None:
        self.prompts = list(prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"prompt": self.prompts[index], "video": None}


class VideoTextDataset(torch.utils.data.Dataset):
    """Rows of a ``path,prompt`` CSV; each item is the prompt and the clip ``[F, 3, H, W]`` in [0, 1]."""

    def __init__(self, csv_path: str | Path, num_frames: int, height: int, width: int) -> None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"data.csv {str(csv_path)!r} not found; it needs columns path,prompt")
        table = pd.read_csv(csv_path)
        if not {"path", "prompt"} <= set(table.columns):
            raise ValueError(f"data.csv {str(csv_path)!r} needs columns path,prompt; it has {', '.join(table.columns)}")
        if table.empty:
            raise ValueError(f"data.csv {str(csv_path)!r} has no rows")
        self.paths = [path if Path(path).is_absolute() else str(csv_path.parent / path) for path in table["path"].astype(str)]
        missing = [path for path in self.paths if not Path(path).exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} clip(s) of {str(csv_path)!r} do not exist, e.g. {missing[0]}")
        self.prompts = table["prompt"].astype(str).tolist()
        self.num_frames, self.height, self.width = num_frames, height, width

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from rewardkit.video.io import probe, read_frames
        from rewardkit.video.sampling import Uniform

        count = probe(self.paths[index]).num_frames
        frames = read_frames(self.paths[index], Uniform(self.num_frames).indices(count))
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
        video = torch.nn.functional.interpolate(video, size=(self.height, self.width), mode="bilinear", antialias=True, align_corners=False)
        return {"prompt": self.prompts[index], "video": video.clamp(0, 1)}


def build_dataset(config) -> PromptDataset | VideoTextDataset:
    """The recipe's data: the CSV's clips when the objective edits data, else its prompts (or the inline ones)."""
    data, model, objective = config.data, config.model, config.objective
    if data.csv:
        dataset = VideoTextDataset(data.csv, model.num_frames, model.height, model.width)
        if objective.mode == "editing" and objective.start == "data":
            return dataset
        return PromptDataset(dataset.prompts)
    return PromptDataset(data.prompts)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    videos = [item["video"] for item in items]
    return {"prompts": [item["prompt"] for item in items], "videos": None if videos[0] is None else torch.stack(videos)}
