"""Evaluation suites: TOML files naming the dimensions to score, the prompt list and videos per prompt.

```toml
name = "quick"
description = "weight-free metrics"
prompts = "prompts/quick.txt"     # optional, relative to this file: one prompt per line
vbench_info = "vbench"            # optional: VBench's VBench_full_info.json (downloaded, pinned, hashed;
                                  # or a path to a file in its format): each vbench dimension then scores
                                  # only the videos of its own VBench prompt list
videos_per_prompt = 1             # expected videos per prompt (coverage check)
seed = 0

[[dimensions]]
name = "temporal_flickering"      # the dimension's name in the results (unique)
reward = "temporal_flickering"    # a registry spec NAME[:key=value,...]
frames = "all"                    # how image rewards sample videos (default segmental:4)
weighting = "mean"                # how frame scores combine (default mean)
aggregate = "mean"                # over videos: mean, or frame_pairs (weighted by frames - 1, as VBench's
                                  # consistency dimensions average over all frame pairs)
vbench = true                     # a VBench dimension: normalised and counted in Quality/Semantic/Total
tolerance = 0.002                 # optional: the drop `rewardkit regress` tolerates (absolute, score units)
prompt_key = "appearance_style"   # optional, with vbench_info: the reward's text is this field of the
                                  # prompt's auxiliary info (VBench's style text), not the prompt; a
                                  # dotted key reaches into nested fields ("scene.scene")
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rewardkit.errors import UserInputError
from rewardkit.eval.vbench import VBENCH_DIMENSIONS
from rewardkit.eval.vbench_info import VBenchInfo, load_vbench_info
from rewardkit.parsing import did_you_mean
from rewardkit.registry import get_reward_info, parse_reward_spec
from rewardkit.toml import tomllib
from rewardkit.video.sampling import FrameSampler, Segmental, parse_sampler
from rewardkit.video.weighting import FrameWeighting, Mean, parse_weighting

__all__ = ["Dimension", "Suite", "load_suite", "read_prompt_list"]

_SUITE_KEYS = {"name", "description", "prompts", "vbench_info", "videos_per_prompt", "seed", "dimensions"}
_DIMENSION_KEYS = {"name", "reward", "frames", "weighting", "aggregate", "vbench", "tolerance", "prompt_key"}
AGGREGATES = ("mean", "frame_pairs")


@dataclass(frozen=True)
class Dimension:
    """One scored dimension of a suite."""

    name: str
    reward: str
    frames: FrameSampler = Segmental(4, "first")
    weighting: FrameWeighting = Mean()
    aggregate: str = "mean"
    vbench: bool = False
    tolerance: float | None = None
    prompts: tuple[str, ...] = ()  # the dimension's own prompt list (VBench's); empty: every video
    prompt_key: str | None = None  # score against this field of the prompt's VBench auxiliary info

    @property
    def reward_name(self) -> str:
        return parse_reward_spec(self.reward)[0]


@dataclass(frozen=True)
class Suite:
    """A parsed suite; ``prompts`` is the prompt list (empty: prompts come from the videos alone)."""

    name: str
    dimensions: tuple[Dimension, ...]
    description: str = ""
    prompts: tuple[str, ...] = ()
    videos_per_prompt: int = 1
    seed: int = 0
    path: Path | None = field(default=None, compare=False)
    vbench_info: VBenchInfo | None = field(default=None, compare=False)

    def select(self, names: list[str]) -> Suite:
        """The suite restricted to the named dimensions (unknown names are an error)."""
        known = {dimension.name for dimension in self.dimensions}
        for name in names:
            if name not in known:
                raise UserInputError(f"suite {self.name!r} has no dimension {name!r}.{did_you_mean(name, known)} It has {', '.join(sorted(known))}")
        chosen = tuple(dimension for dimension in self.dimensions if dimension.name in names)
        return Suite(self.name, chosen, self.description, self.prompts, self.videos_per_prompt, self.seed, self.path, self.vbench_info)


def _check_keys(found: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in found:
        if key not in allowed:
            raise UserInputError(f"unknown key {key!r} in {where}.{did_you_mean(key, allowed)} Allowed keys: {', '.join(sorted(allowed))}")


def read_prompt_list(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def load_suite(path: str | os.PathLike[str], vbench_info: str | os.PathLike[str] | None = None) -> Suite:
    """Read and check a suite file: every reward must be registered, every option readable.

    ``vbench_info`` replaces the suite's ``vbench_info`` source (a path to a file in the format of VBench's
    VBench_full_info.json)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"suite file {str(path)!r} not found; suites are TOML files such as eval/quick.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UserInputError(f"{path}: not valid TOML: {error}") from None
    _check_keys(data, _SUITE_KEYS, str(path))
    raw_dimensions = data.get("dimensions")
    if not isinstance(raw_dimensions, list) or not raw_dimensions:
        raise UserInputError(f"{path}: a suite needs at least one [[dimensions]] table with a name and a reward")
    dimensions = []
    for index, raw in enumerate(raw_dimensions):
        where = f"{path} [[dimensions]] #{index + 1}"
        _check_keys(raw, _DIMENSION_KEYS, where)
        if "name" not in raw or "reward" not in raw:
            raise UserInputError(f"{where}: every dimension needs 'name' and 'reward'")
        for key, parse in (("frames", parse_sampler), ("weighting", parse_weighting)):
            if key in raw:
                raw = {**raw, key: parse(str(raw[key]))}
        dimension = Dimension(**raw)
        get_reward_info(dimension.reward_name)  # unknown reward: an error with the close matches
        if dimension.aggregate not in AGGREGATES:
            raise UserInputError(f"{where}: aggregate must be one of {', '.join(AGGREGATES)}, got {dimension.aggregate!r}")
        if dimension.tolerance is not None and (
            isinstance(dimension.tolerance, bool) or not isinstance(dimension.tolerance, (int, float)) or not dimension.tolerance >= 0
        ):
            raise UserInputError(f"{where}: tolerance must be a non-negative number (score units), got {dimension.tolerance!r}")
        if dimension.vbench and dimension.name not in VBENCH_DIMENSIONS:
            raise UserInputError(
                f"{where}: vbench = true needs the dimension to be named as VBench's.{did_you_mean(dimension.name, VBENCH_DIMENSIONS)}"
            )
        dimensions.append(dimension)
    names = [dimension.name for dimension in dimensions]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UserInputError(f"{path}: dimension names must be unique; repeated: {', '.join(duplicated)}")
    prompts: tuple[str, ...] = ()
    if "prompts" in data:
        prompt_file = (path.parent / data["prompts"]).resolve()
        if not prompt_file.is_file():
            raise UserInputError(f"{path}: prompt list {str(prompt_file)!r} not found")
        prompts = read_prompt_list(prompt_file)
    info = None
    if vbench_info is not None or "vbench_info" in data:
        source = vbench_info if vbench_info is not None else data["vbench_info"]
        info = load_vbench_info(source if str(source) == "vbench" or vbench_info is not None else path.parent / str(source))
        own = []
        for dimension in dimensions:
            listed = info.prompts(dimension.name) if dimension.vbench else ()
            if dimension.vbench and not listed:
                raise UserInputError(f"{path}: {info.source} lists no prompt for dimension {dimension.name!r}")
            own.append(replace(dimension, prompts=listed))
        dimensions = own
    for dimension in dimensions:
        if dimension.prompt_key is not None:
            if info is None:
                raise UserInputError(f"{path}: dimension {dimension.name!r} sets prompt_key, which needs vbench_info in the suite")
            lacking = [p for p in dimension.prompts if info.auxiliary_text(dimension.name, p, dimension.prompt_key) is None]
            if lacking:
                raise UserInputError(f"{path}: {info.source} has no auxiliary {dimension.prompt_key!r} for {dimension.name!r} prompt {lacking[0]!r}")
    if info is not None and not prompts:
        prompts = tuple(dict.fromkeys(prompt for dimension in dimensions for prompt in dimension.prompts))
    videos_per_prompt = data.get("videos_per_prompt", 1)
    if not isinstance(videos_per_prompt, int) or videos_per_prompt < 1:
        raise UserInputError(f"{path}: videos_per_prompt must be a positive integer, got {videos_per_prompt!r}")
    return Suite(
        name=str(data.get("name", path.stem)),
        dimensions=tuple(dimensions),
        description=str(data.get("description", "")),
        prompts=prompts,
        videos_per_prompt=videos_per_prompt,
        seed=int(data.get("seed", 0)),
        path=path,
        vbench_info=info,
    )
