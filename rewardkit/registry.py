"""Registry of scorers: register them by name, list them, build them with validated options.

Every scorer is a ``torch.nn.Module`` built by a factory function. The factory's keyword arguments are
the scorer's options; ``create_reward`` checks user-supplied options against that signature, converts
string values (from the command line) to the annotated types, and names the close matches of anything
it does not know.

Registration is lazy: ``BUILTIN_REWARDS`` maps each built-in name to the module that registers it, so
asking for one reward imports one module, and the reward modules import their heavy packages (open_clip,
transformers, torchvision, OpenCV) only when a reward is built (:mod:`rewardkit.lazy`). Other packages
add rewards through the entry-point group ``rewardkit.rewards``: each entry's name is the reward's name
and its value the module that registers it, e.g. in their pyproject.toml::

    [project.entry-points."rewardkit.rewards"]
    my_reward = "my_package.rewards"
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardkit.errors import UserInputError
from rewardkit.lazy import check_dependencies
from rewardkit.parsing import convert, did_you_mean

__all__ = [
    "WeightFile",
    "RewardInfo",
    "register_reward",
    "create_reward",
    "list_rewards",
    "get_reward_info",
    "parse_reward_spec",
    "parse_device",
    "BUILTIN_REWARDS",
    "ENTRY_POINT_GROUP",
]

# Options every factory receives from ``create_reward`` itself rather than from the user's options.
COMMON_ARGUMENTS = ("device", "dtype", "weights")


@dataclass(frozen=True)
class WeightFile:
    """One file a scorer needs (with ``extra_files``, the companions that sit beside it).

    ``sha256`` is the published hash when one is pinned; when it is None the file is checked against the
    Hugging Face Hub's own LFS hash instead (the blob name in the HF cache). ``size`` is in bytes (0: not
    known). Files hosted outside the Hub set ``url``: they are downloaded from it into the rewardkit cache
    (``REWARDKIT_CACHE``), and ``repo`` then only names the project the file comes from. Files that
    rewardkit cannot download set ``manual`` to the instructions for getting them; the user passes their
    path. ``holds_weights`` is False for configuration files (tokenizer, processor, architecture): they do
    not enter the recorded ``weights_sha256``.
    """

    repo: str
    filename: str
    size: int
    license: str
    sha256: str | None = None
    revision: str | None = None
    extra_files: tuple[str, ...] = ()
    url: str | None = None
    manual: str = ""
    holds_weights: bool = True

    @property
    def downloadable(self) -> bool:
        """False for files only the user can supply (by path); see ``manual``."""
        return not self.manual

    @property
    def size_text(self) -> str:
        return format_size(self.size) if self.size else "size unknown"

    @property
    def source(self) -> str:
        """Where the file comes from: its URL, or ``repo/filename`` on the Hugging Face Hub."""
        return self.url or f"{self.repo}/{self.filename}"

    @property
    def label(self) -> str:
        """A short name for tables: ``repo/filename``, with the host when the file is not on the Hub."""
        if not self.downloadable:
            return f"{self.repo}/{self.filename} (path only)"
        if self.url is None:
            return f"{self.repo}/{self.filename}"
        from urllib.parse import urlparse

        return f"{self.repo}/{self.filename} ({urlparse(self.url).netloc or 'local'})"


@dataclass(frozen=True)
class RewardInfo:
    """What a scorer declares about itself; shown by ``rewardkit list`` and read by the scoring engine."""

    name: str
    factory: Callable[..., torch.nn.Module]
    modality: str  # "image" or "video"
    needs_prompt: bool
    differentiable: bool
    higher_is_better: bool
    description: str
    score_range: tuple[float, float] | Callable[[Mapping[str, Any]], tuple[float, float]] = (-math.inf, math.inf)
    """The range scores can take (infinite ends: unbounded), or a function of the options giving it."""
    weights: Mapping[str, WeightFile] | Callable[[Mapping[str, Any]], Mapping[str, WeightFile]] = field(
        default_factory=dict
    )
    paper: str = ""
    repository: str = ""
    prompt_examples: tuple[str, ...] = ()
    """For rewards whose prompt is a label in a fixed form rather than free text (VBench's object names,
    colour prompts, spatial JSON): valid examples of it (the contract tests score with these)."""

    @property
    def options(self) -> dict[str, inspect.Parameter]:
        """The user-settable options: the factory's keyword arguments minus the common ones."""
        parameters = inspect.signature(self.factory).parameters
        return {
            name: parameter
            for name, parameter in parameters.items()
            if name not in COMMON_ARGUMENTS and parameter.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def weight_roles(self, options: Mapping[str, Any] | None = None) -> dict[str, WeightFile]:
        """The files the given options need, by role (``model``, ``head``, ``backbone``, ``tokenizer``, ...).

        The first role is the main one: a plain ``weights=PATH`` supplies it; ``weights={ROLE: PATH}`` any."""
        if callable(self.weights):
            return dict(self.weights({**self.defaults, **(options or {})}))
        return dict(self.weights)

    def weight_files(self, options: Mapping[str, Any] | None = None) -> list[WeightFile]:
        """The files the given options need (``weight_roles`` without the roles)."""
        return list(self.weight_roles(options).values())

    def score_range_for(self, options: Mapping[str, Any] | None = None) -> tuple[float, float]:
        """The range of scores with the given options (e.g. ``clip:form=x100`` scores 0-100)."""
        if callable(self.score_range):
            return self.score_range({**self.defaults, **(options or {})})
        return self.score_range

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: parameter.default for name, parameter in self.options.items()}


_REGISTRY: dict[str, RewardInfo] = {}

# Built-in reward name -> the module whose import registers it (checked against the modules by the tests).
BUILTIN_REWARDS: dict[str, str] = {
    "aesthetic": "rewardkit.rewards.aesthetic",
    "aesthetic_quality": "rewardkit.rewards.aesthetic",
    "appearance_style": "rewardkit.rewards.clip",
    "background_consistency": "rewardkit.rewards.clip",
    "clip": "rewardkit.rewards.clip",
    "color": "rewardkit.rewards.grit",
    "dover": "rewardkit.rewards.dover",
    "dynamic_degree": "rewardkit.rewards.raft",
    "dynamic_degree_flow": "rewardkit.rewards.motion",
    "hpsv2": "rewardkit.rewards.hpsv2",
    "human_action": "rewardkit.rewards.umt",
    "imagereward": "rewardkit.rewards.imagereward",
    "imaging_quality": "rewardkit.rewards.musiq",
    "motion_smoothness": "rewardkit.rewards.amt",
    "motion_smoothness_flow": "rewardkit.rewards.motion",
    "multiple_objects": "rewardkit.rewards.grit",
    "object_class": "rewardkit.rewards.grit",
    "overall_consistency": "rewardkit.rewards.viclip",
    "patch": "rewardkit.rewards.wrappers",
    "pickscore": "rewardkit.rewards.pickscore",
    "scene": "rewardkit.rewards.tag2text",
    "spatial_relationship": "rewardkit.rewards.grit",
    "subject_consistency": "rewardkit.rewards.dino",
    "temporal_flickering": "rewardkit.rewards.flicker",
    "temporal_style": "rewardkit.rewards.viclip",
    "videoreward": "rewardkit.rewards.videoreward",
    "videoscore": "rewardkit.rewards.videoscore",
}

ENTRY_POINT_GROUP = "rewardkit.rewards"


def register_reward(
    name: str,
    *,
    modality: str,
    needs_prompt: bool,
    differentiable: bool,
    higher_is_better: bool = True,
    score_range: tuple[float, float] | Callable[[Mapping[str, Any]], tuple[float, float]] = (-math.inf, math.inf),
    description: str = "",
    weights: Mapping[str, WeightFile] | Callable[[Mapping[str, Any]], Mapping[str, WeightFile]] | None = None,
    paper: str = "",
    repository: str = "",
    prompt_examples: tuple[str, ...] = (),
) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Decorator registering a scorer factory under ``name``.

    The factory takes keyword-only options plus ``device``, ``dtype`` and ``weights``. ``weights``
    declares the files by role (a mapping, or a function of the options returning one); the factory
    loads them through ``rewardkit.weights.build_with_weights``. ``prompt_examples``: see ``RewardInfo``.
    """
    if modality not in ("image", "video"):
        raise ValueError(f"modality must be 'image' or 'video', got {modality!r}")

    def decorator(factory: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"a reward named {name!r} is already registered")
        _REGISTRY[name] = RewardInfo(
            name=name,
            factory=factory,
            modality=modality,
            needs_prompt=needs_prompt,
            differentiable=differentiable,
            higher_is_better=higher_is_better,
            score_range=score_range,
            description=description or (inspect.getdoc(factory) or "").split("\n")[0],
            weights=weights if callable(weights) else dict(weights or {}),
            paper=paper,
            repository=repository,
            prompt_examples=tuple(prompt_examples),
        )
        return factory

    return decorator


@functools.cache
def _plugin_modules() -> dict[str, str]:
    """Reward name -> module, from the installed packages' ``rewardkit.rewards`` entry points."""
    return {entry.name: entry.value for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _known_names() -> list[str]:
    return sorted({*_REGISTRY, *BUILTIN_REWARDS, *_plugin_modules()})


def _load(name: str) -> None:
    """Import the module that registers ``name`` (a no-op once registered)."""
    if name in _REGISTRY:
        return
    module = BUILTIN_REWARDS.get(name) or _plugin_modules().get(name)
    if module is not None:
        importlib.import_module(module)
        if name not in _REGISTRY:
            raise RuntimeError(f"importing {module} did not register the reward {name!r} it is listed for")


def list_rewards() -> list[RewardInfo]:
    """All registered scorers (built-in and from entry points), sorted by name."""
    for name in _known_names():
        _load(name)
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_reward_info(name: str) -> RewardInfo:
    """The declaration of ``name``; an unknown name is a UserInputError naming the close matches."""
    _load(name)
    if name not in _REGISTRY:
        raise UserInputError(
            f"unknown reward {name!r}.{did_you_mean(name, _known_names())} Run `rewardkit list` to see all."
        )
    return _REGISTRY[name]


def create_reward(
    name: str,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    weights: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Build the scorer registered as ``name``.

    ``weights`` is an explicit path (file or folder) to the main weights file, or a mapping from role to
    path for rewards made of several files (``{"head": ..., "backbone": ...}``; see
    ``get_reward_info(name).weight_roles()``); what it leaves out comes from the caches or a download. Option values may be strings (as from the command line); they are converted to the types
    the factory declares.
    """
    info = get_reward_info(name)
    converted = validate_options(info, options)
    check_dependencies(vars(importlib.import_module(info.factory.__module__)))
    module = info.factory(
        device=parse_device(device),
        dtype=parse_dtype(dtype),
        weights=weights,
        **converted,
    )
    module.info = info
    module.options = converted
    return module.eval()


def validate_options(info: RewardInfo, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check option names against the factory and convert string values to the declared types."""
    known = info.options
    converted: dict[str, Any] = {}
    passes_through = any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in inspect.signature(info.factory).parameters.values()
    )
    for key, value in options.items():
        if key not in known and passes_through:
            converted[key] = value  # a wrapper's **options: checked by the reward it builds
            continue
        if key not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise UserInputError(
                f"unknown option {key!r} for reward {info.name!r}.{did_you_mean(key, known)} "
                f"Its options are: {choices}."
            )
        annotation = typing.get_type_hints(info.factory).get(key, known[key].annotation)
        # Values from Python pass as they are; strings (from the command line) are converted.
        converted[key] = convert(f"reward {info.name!r} option {key}", value, annotation, known[key].default) if isinstance(value, str) else value
    return converted


def parse_reward_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,key=value`` into the name and a dict of string options."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise UserInputError(f"empty reward name in {spec!r}; write NAME or NAME:key=value,...")
    options: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UserInputError(
                    f"cannot read option {item!r} in {spec!r}; write options as key=value separated by commas"
                )
            options[key.strip()] = value.strip()
    return name, options


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """Accept torch dtypes and the usual names (fp32, float16, bf16, ...)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    if dtype not in names:
        raise UserInputError(f"unknown dtype {dtype!r}; use one of fp32, fp16, bf16")
    return names[dtype]


def parse_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device (default cpu); one that this machine does not have is a UserInputError."""
    if device is None:
        return torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserInputError(f"unknown device {str(device)!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"device {str(device)!r} asked for, but torch finds no CUDA GPU here; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserInputError(f"device {str(device)!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UserInputError(f"device {str(device)!r} asked for, but MPS is not available here; use cpu")
    return parsed


def format_size(size: int) -> str:
    """Human-readable byte count (decimal units, as the Hugging Face Hub shows them)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


