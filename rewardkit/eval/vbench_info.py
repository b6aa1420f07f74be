"""VBench's prompt lists and auxiliary information, read from VBench's own ``VBench_full_info.json``.

The file (VBench's ``vbench/VBench_full_info.json``, what its ``load_dimension_info`` reads) lists 946
prompts, each with the dimensions it serves and, for some, the auxiliary information its rules need::

    {"prompt_en": "a red bicycle", "dimension": ["color"], "auxiliary_info": {"color": {"color": "red"}}}

rewardkit never ships a copy: ``load_vbench_info("vbench")`` downloads it once from VBench's repository at
a pinned commit into the rewardkit cache (``REWARDKIT_CACHE``) and checks its sha256, like the weights;
offline it must already be cached (``rewardkit download`` is for rewards; copy the file into the cache or
give its path instead). Any file in the same format can be given by path (tests use a small stand-in).
human_action's Kinetics-400 class names (VBench's ``kinetics_400_categories.txt``) are a file of that reward
(``rewardkit.rewards.umt``), fetched with its weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.errors import UserInputError
from rewardkit.registry import WeightFile
from rewardkit.weights import MissingWeightsError, fetch_weight_file

__all__ = ["VBENCH_COMMIT", "VBENCH_INFO_FILE", "VBenchInfo", "load_vbench_info"]

VBENCH_COMMIT = "45e79ec14e69a2187202c675d2dbce1a71843d53"
VBENCH_INFO_FILE = WeightFile(
    "Vchitect/VBench",
    "VBench_full_info.json",
    228_118,
    "Apache-2.0",
    sha256="5dd2de80ee43cda750b2b72ea7023657c0b90d3702041c7e4608c65dbe50dccd",
    url=f"https://raw.githubusercontent.com/Vchitect/VBench/{VBENCH_COMMIT}/vbench/VBench_full_info.json",
    holds_weights=False,
)

@dataclass(frozen=True)
class VBenchInfo:
    """The parsed file: ``entries`` as ``(prompt, dimensions, auxiliary_info)`` in file order."""

    entries: tuple[tuple[str, tuple[str, ...], Mapping[str, Any]], ...]
    source: str

    def prompts(self, dimension: str) -> tuple[str, ...]:
        """The prompts VBench evaluates ``dimension`` on, in file order (VBench's ``load_dimension_info``)."""
        return tuple(prompt for prompt, dimensions, _ in self.entries if dimension in dimensions)

    def auxiliary(self, dimension: str, prompt: str) -> Any:
        """The prompt's ``auxiliary_info[dimension]`` (e.g. ``{"color": "red"}`` for color), None if absent."""
        for text, dimensions, auxiliary in self.entries:
            if text == prompt and dimension in dimensions and dimension in auxiliary:
                return auxiliary[dimension]
        return None

    def auxiliary_text(self, dimension: str, prompt: str, key: str) -> str | None:
        """The text at ``key`` in the prompt's ``auxiliary_info[dimension]``; a dotted key goes down nested
        objects (scene's label is ``{"scene": {"scene": "alley"}}``: key ``scene.scene``), and an object
        found there is given as its JSON text (spatial_relationship's ``{"object_a", "object_b",
        "relationship"}``). None if absent."""
        value = self.auxiliary(dimension, prompt)
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            return json.dumps(value)
        return value if isinstance(value, str) else None

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, dimensions, _ in self.entries for name in dimensions))


def _parse(data: Any, source: str) -> VBenchInfo:
    if not isinstance(data, list):
        raise UserInputError(f"{source}: VBench's info file is a JSON list of prompt entries, got {type(data).__name__}")
    entries = []
    for index, entry in enumerate(data):
        where = f"{source} entry {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt_en"), str) or not isinstance(entry.get("dimension"), list):
            raise UserInputError(f'{where}: each entry needs "prompt_en" (text) and "dimension" (a list of names), got {entry!r}')
        auxiliary = entry.get("auxiliary_info", {})
        if not isinstance(auxiliary, dict):
            raise UserInputError(f'{where}: "auxiliary_info" must be an object keyed by dimension, got {auxiliary!r}')
        entries.append((entry["prompt_en"], tuple(str(name) for name in entry["dimension"]), auxiliary))
    return VBenchInfo(tuple(entries), source)


def _data_file(file: WeightFile, source: str | os.PathLike[str]) -> Path:
    """VBench's pinned ``file`` when ``source`` is ``"vbench"`` (cached, else downloaded; sha256 checked),
    otherwise the path ``source``."""
    if str(source) == "vbench":
        try:
            return fetch_weight_file(file, reward="vbench")
        except MissingWeightsError as error:
            raise UserInputError(
                f"VBench's {file.filename} is not available: {error}. Fetch it on a machine with internet access "
                f"({file.url}, sha256 {file.sha256}) and give its path, or put it in REWARDKIT_CACHE as rewardkit would."
            ) from None
    path = Path(source)
    if not path.is_file():
        raise UserInputError(f"{str(path)!r} not found; give VBench's {file.filename} or a file in its format")
    return path


def load_vbench_info(source: str | os.PathLike[str] = "vbench") -> VBenchInfo:
    """``"vbench"``: VBench's file at the pinned commit (cached, else downloaded; sha256 checked); otherwise
    the path of a file in the same format."""
    path = _data_file(VBENCH_INFO_FILE, source)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: not a JSON file: {error}") from None
    return _parse(data, str(path))
