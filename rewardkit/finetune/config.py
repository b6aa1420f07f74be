"""Fine-tuning recipes: typed dataclasses read from TOML, with ``--set key=value`` overrides.

A recipe has the sections ``[model]``, ``[lora]``, ``[objective]``, ``[reward]``, ``[data]`` and
``[train]``; every key has a default, so a recipe names only what it changes. ``[objective]``'s keys are
those of the objective it names (``name = "dpo"``: ``rewardkit.finetune.objectives``, each with its own
config dataclass). ``load_recipe`` checks every key and value against the dataclasses before anything is
built: an unknown key or a bad value is a ``ValueError`` naming the key, its close matches and the
allowed keys or values.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewardkit.errors import UserInputError
from rewardkit.parsing import convert, did_you_mean
from rewardkit.toml import tomllib

__all__ = [
    "ModelConfig",
    "LoraConfig",
    "RewardConfig",
    "DataConfig",
    "TrainConfig",
    "Recipe",
    "load_recipe",
    "parse_overrides",
    "recipe_to_toml",
]


@dataclass
class ModelConfig:
    """The base text-to-video model."""

    family: str = "unet3d"
    """Adapter family (``rewardkit.finetune.models``): ``unet3d`` = diffusers TextToVideoSDPipeline
    components (ModelScope T2V, ZeroScope); ``animatediff`` = AnimateDiffPipeline components
    (UNetMotionModel: SD 1.5 UNet + MotionAdapter); ``wan`` = WanPipeline components (flow matching)."""
    path: str = "ali-vilab/text-to-video-ms-1.7b"
    """Hugging Face repo id, or a local ``save_pretrained`` folder, or ``testing:tiny-t2v`` /
    ``testing:tiny-animatediff`` (tiny random). animatediff: an AnimateDiff pipeline, or a Stable Diffusion
    1.5 model together with ``motion_adapter``."""
    motion_adapter: str = ""
    """animatediff only: a MotionAdapter repo id or folder (e.g. ``guoyww/animatediff-motion-adapter-v1-5-2``)
    to combine with the Stable Diffusion model at ``path``; empty when ``path`` is an AnimateDiff pipeline."""
    revision: str = ""
    """Hub revision (branch, tag or commit); empty for the default branch."""
    variant: str = ""
    """Weights variant on the Hub (e.g. ``fp16``); empty for the default files."""
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    """dtype of the frozen weights (UNet base, VAE, text encoder); LoRA weights are always fp32."""
    num_frames: int = 16
    height: int = 256
    width: int = 256
    gradient_checkpointing: bool = True
    """Recompute the denoiser's activations block by block during backward (VGen checkpoints inside its
    UNet; for UNet3D, which diffusers does not checkpoint, rewardkit wraps the layers of its blocks)."""


@dataclass
class LoraConfig:
    """LoRA adapters on the denoiser (peft)."""

    rank: int = 4
    alpha: float = 0.0
    """LoRA alpha; 0 means alpha = rank (scale 1)."""
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass
class RewardConfig:
    """The reward R = a weighted sum of registry rewards: backpropagated (reward_backprop: loss 1 - R),
    scoring rollouts (rwr), or only scoring the sample videos (dpo, gran_dpo)."""

    rewards: list[str] = field(default_factory=list)
    """Reward specs ``NAME[:key=value,...]`` as in ``rewardkit score --reward``."""
    weights: list[float] = field(default_factory=list)
    """One weight per reward; empty means 1 for each."""
    weight_files: list[str] = field(default_factory=list)
    """Local weights ``NAME=PATH`` (else the Hugging Face cache)."""
    frames: str = "segmental:4:random"
    """Frames an image reward sees (decoded from the latents, nothing else is): segmental:S[:mode], uniform:N, all."""
    weighting: str = "tar:1.0"
    """Combine frame scores: ``mean`` or ``tar:LAMBDA[:normalized]`` (temporal attenuation)."""
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"


@dataclass
class DataConfig:
    """Prompts, clips (editing from data, rwr with given rewards) or preference pairs (dpo, gran_dpo)."""

    csv: str = ""
    """Video-text CSV with columns path,prompt (paths relative to the CSV's folder); rwr also reads a
    ``reward`` column when the rewards are given in the data."""
    prompts: list[str] = field(default_factory=list)
    """Inline prompts (used when there is no CSV; editing then needs start = "sample")."""
    pairs: str = ""
    """Preference pairs, JSONL with prompt, chosen, rejected[, margin, tie] (``rewardkit pairs`` writes it;
    video paths relative to the file's folder)."""
    sample_fps: float = 8.0
    """Training clips: a contiguous window of model.num_frames frames at this frame rate from a random
    start, centre-cropped (VGen's video_dataset: 8 fps); 0 takes every decoded frame."""
    invalid_rows: Literal["error", "skip"] = "error"
    """A row whose video cannot be read or whose prompt is empty: ``error`` stops before training and
    names the file and row; ``skip`` drops it (the count is printed)."""
    num_workers: int = 0


@dataclass
class TrainConfig:
    """The optimisation loop (accelerate)."""

    output_dir: str = "runs/finetune"
    max_steps: int = 1000
    batch_size: int = 8
    """Per-device batch size (per micro-batch); the global batch is batch_size x gradient_accumulation_steps
    x the number of processes."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant_with_warmup"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    """Clip the LoRA gradients' global norm; 0 turns clipping off (the unclipped norm is still logged)."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 0
    checkpoint_every: int = 500
    sample_every: int = 500
    """Write sample videos (mp4) with their rewards every N steps; 0 turns samples off."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts of the sample videos; empty means the first prompts of the data."""
    monitor_rewards: list[str] = field(default_factory=list)
    """Held-out rewards ``NAME[:key=value]`` (e.g. dover, videoreward, temporal_flickering) scoring the sample
    videos at step 0 and every ``sample_every`` steps: the reward-hacking alarm (rewardkit.finetune.monitor)."""
    monitor_thresholds: list[float] = field(default_factory=list)
    """One per monitor reward: the drop (its score units) over the window beyond which the alarm fires; empty: 0."""
    monitor_window: int = 2
    """The alarm compares each evaluation of the samples with the one this many evaluations earlier."""
    monitor_stop: bool = False
    """Stop the run (checkpoint and LoRA saved) when the alarm fires, instead of only warning."""
    log_every: int = 1
    """Write a metrics row every N steps (and at the last step)."""
    device: str = "auto"
    """``auto`` (accelerate's choice), or ``cpu``."""
    progress: bool = True


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    objective: Any = field(default_factory=lambda: objective_config_class("reward_backprop")())
    """The named objective's config (a ``rewardkit.finetune.objectives`` config dataclass)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check(self) -> None:
        """Cross-field checks (single values are checked while reading), then the objective's own."""
        from rewardkit.finetune.models import family_names

        positive = {
            "model.num_frames": self.model.num_frames, "model.height": self.model.height,
            "model.width": self.model.width, "lora.rank": self.lora.rank, "train.max_steps": self.train.max_steps,
            "train.batch_size": self.train.batch_size,
            "train.gradient_accumulation_steps": self.train.gradient_accumulation_steps, "train.log_every": self.train.log_every,
        }
        for key, value in positive.items():
            if value < 1:
                raise UserInputError(f"{key} must be at least 1, got {value}")
        not_negative = {
            "train.warmup_steps": self.train.warmup_steps, "train.max_grad_norm": self.train.max_grad_norm,
            "train.checkpoint_every": self.train.checkpoint_every, "train.sample_every": self.train.sample_every,
            "data.sample_fps": self.data.sample_fps, "data.num_workers": self.data.num_workers,
        }
        for key, value in not_negative.items():
            if value < 0:
                raise UserInputError(f"{key} must be at least 0, got {value}")
        if self.model.family not in family_names():
            raise UserInputError(
                f"model.family = {self.model.family!r} is not allowed; use one of {', '.join(map(repr, family_names()))}."
                f"{did_you_mean(self.model.family, family_names())}"
            )
        if self.reward.weights and len(self.reward.weights) != len(self.reward.rewards):
            raise UserInputError(
                f"reward.weights has {len(self.reward.weights)} values for {len(self.reward.rewards)} rewards; "
                "give one weight per reward or none"
            )
        if self.train.monitor_rewards:
            if not self.reward.rewards or not self.train.sample_every:
                raise UserInputError(
                    "train.monitor_rewards needs a training reward (reward.rewards, scoring the sample videos) and "
                    "train.sample_every > 0: the alarm compares the held-out rewards with the training reward on the samples"
                )
            if self.train.monitor_thresholds and len(self.train.monitor_thresholds) != len(self.train.monitor_rewards):
                raise UserInputError(
                    f"train.monitor_thresholds has {len(self.train.monitor_thresholds)} values for "
                    f"{len(self.train.monitor_rewards)} monitor rewards; give one per reward or none"
                )
            if any(not value >= 0 for value in self.train.monitor_thresholds) or self.train.monitor_window < 1:
                raise UserInputError("train.monitor_thresholds must be >= 0 and train.monitor_window at least 1")
        if self.model.motion_adapter and self.model.family != "animatediff":
            raise UserInputError(
                f"model.motion_adapter is only read by model.family = \"animatediff\", not {self.model.family!r}; "
                "remove it or set model.family = \"animatediff\""
            )
        if self.model.height % 8 or self.model.width % 8:
            raise UserInputError(f"model.height and model.width must be multiples of 8, got {self.model.height}x{self.model.width}")
        self.objective.check(self)


def objective_config_class(name: str) -> type:
    """The config dataclass of the objective registered as ``name``."""
    from rewardkit.finetune.objectives import get_objective

    return get_objective(name).Config


def start_step_count(tau: float, num_inference_steps: int) -> int:
    """tau * D as VGen counts it: ``int(D * tau)`` (with a little slack for float error, 0.6 * 20 = 12)."""
    return int(num_inference_steps * tau + 1e-6)


# ------------------------------------------------------------------------------------------ reading


def _section_types(objective: str = "reward_backprop") -> dict[str, type]:
    types = {field_.name: typing.get_type_hints(Recipe)[field_.name] for field_ in dataclasses.fields(Recipe)}
    types["objective"] = objective_config_class(objective)
    return types


def _build(data: Mapping[str, Any]) -> Recipe:
    objective = data.get("objective", {})
    name = objective.get("name", "reward_backprop") if isinstance(objective, Mapping) else "reward_backprop"
    if not isinstance(name, str):
        raise UserInputError(f"objective.name must be a string, got {name!r}")
    sections = _section_types(name)
    built: dict[str, Any] = {}
    for name, value in data.items():
        if name not in sections:
            raise UserInputError(
                f"unknown recipe section [{name}].{did_you_mean(name, list(sections))} Sections: {', '.join(sections)}."
            )
        if not isinstance(value, Mapping):
            raise UserInputError(f"[{name}] must be a table of key = value lines, got {value!r}")
        cls = sections[name]
        hints = typing.get_type_hints(cls)
        keys = [field_.name for field_ in dataclasses.fields(cls)]
        values = {}
        for key, item in value.items():
            if key not in hints:
                raise UserInputError(
                    f"unknown recipe key {name}.{key}.{did_you_mean(key, keys)} Keys of [{name}]: {', '.join(keys)}."
                )
            values[key] = convert(f"{name}.{key}", item, hints[key])
        built[name] = cls(**values)
    recipe = Recipe(**built)
    recipe.check()
    return recipe


def parse_overrides(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.max_steps=10", "reward.rewards=[\"aesthetic\"]"]`` -> nested dict of values. A value is
    read as a TOML value when it is one (numbers, booleans, quoted strings, arrays), else as a string."""
    nested: dict[str, dict[str, Any]] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key.count(".") != 1:
            raise UserInputError(f"cannot read --set {item!r}; write SECTION.KEY=VALUE, e.g. train.max_steps=100")
        section, name = key.split(".")
        try:
            value = tomllib.loads(f"value = {raw.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        nested.setdefault(section, {})[name] = value
    return nested


def _merge(base: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return merged


def load_recipe(recipe: str | Path | Mapping[str, Any] | Recipe, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe (TOML path, mapping or Recipe) and apply ``--set`` overrides; checks everything."""
    if isinstance(recipe, Recipe):
        data: dict[str, Any] = dataclasses.asdict(recipe)
    elif isinstance(recipe, Mapping):
        data = {section: dict(values) for section, values in recipe.items()}
    else:
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(f"recipe {str(path)!r} not found; the shipped recipes are in finetune/*.toml")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise UserInputError(f"recipe {str(path)!r} is not valid TOML: {error}") from None
    return _build(_merge(data, parse_overrides(overrides)))


def recipe_to_toml(recipe: Recipe) -> str:
    """The fully resolved recipe as TOML (every key, defaults included), for the run directory."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (int, float)):
            return repr(item)
        if isinstance(item, str):
            return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(item, list):
            return "[" + ", ".join(value(part) for part in item) + "]"
        raise TypeError(f"cannot write {item!r} as TOML")

    lines: list[str] = []
    for section, values in dataclasses.asdict(recipe).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value(item)}" for key, item in values.items())
        lines.append("")
    return "\n".join(lines)

