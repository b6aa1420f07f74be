"""LoRA on the denoiser with peft, saved in the diffusers LoRA file layout.

Files are ``pytorch_lora_weights.safetensors`` with peft keys prefixed by the component (``unet.``), the
layout diffusers' ``save_lora_weights`` writes for PEFT-backed models, plus the LoRA config in the
safetensors metadata. diffusers 0.42's ``UNet3DConditionModel`` lacks ``PeftAdapterMixin``, so
``TextToVideoSDPipeline.load_lora_weights`` fails on it (``no attribute 'load_lora_adapter'``);
``load_lora_into_pipeline`` here loads the same file into any pipeline's ``unet`` and can merge it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["LORA_FILE", "add_lora", "lora_parameters", "lora_state_dict", "save_lora", "load_lora", "load_lora_into_pipeline", "merge_lora"]

LORA_FILE = "pytorch_lora_weights.safetensors"
_METADATA_KEY = "rewardkit_lora_config"


def add_lora(model: torch.nn.Module, rank: int, alpha: float, target_modules: Sequence[str], dropout: float = 0.0) -> list[torch.nn.Parameter]:
    """Inject LoRA layers (fp32) into ``model`` and return the trainable parameters (LoRA only)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha or rank, lora_dropout=dropout, target_modules=list(target_modules), init_lora_weights="gaussian")
    model.requires_grad_(False)
    try:
        inject_adapter_in_model(config, model)
    except ValueError as error:
        raise ValueError(f"lora.target_modules {list(target_modules)} match no layer of the denoiser ({error})") from None
    parameters = lora_parameters(model)
    for parameter in parameters:
        parameter.data = parameter.data.float()
        parameter.requires_grad_(True)
    model._rewardkit_lora_config = {"r": rank, "lora_alpha": alpha or rank, "target_modules": list(target_modules)}
    return parameters


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [parameter for name, parameter in model.named_parameters() if "lora_" in name]


def lora_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """peft's LoRA state dict (adapter name removed)."""
    from peft.utils import get_peft_model_state_dict

    return {key: value.detach().cpu().contiguous() for key, value in get_peft_model_state_dict(model).items()}


def save_lora(model: torch.nn.Module, folder: str | os.PathLike[str], prefix: str = "unet") -> Path:
    """Write ``folder/pytorch_lora_weights.safetensors`` (keys ``unet.<peft key>``)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"{prefix}.{key}": value for key, value in lora_state_dict(model).items()}
    config = getattr(model, "_rewardkit_lora_config", {})
    metadata = {
        _METADATA_KEY: json.dumps(config),
        "format": "pt",
        # diffusers' own field (rank, alpha, targets per component), read by load_lora_weights: without
        # it diffusers would assume alpha = rank.
        "lora_adapter_metadata": json.dumps({f"{prefix}.{key}": value for key, value in config.items()}, indent=2, sort_keys=True),
    }
    save_file(state, folder / LORA_FILE, metadata=metadata)
    return folder / LORA_FILE


def load_lora(module: torch.nn.Module, path: str | os.PathLike[str], *, prefix: str = "unet", merge: bool = False) -> torch.nn.Module:
    """Load a LoRA file written by ``save_lora`` (or its folder) into ``module`` (strictly: every key must
    fit); with ``merge`` the LoRA is folded into the base weights and the LoRA layers removed."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import set_peft_model_state_dict
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / LORA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file {str(path)!r} not found; give a run's lora/ folder (RUN/lora) or its {LORA_FILE}")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state = {key[len(prefix) + 1:]: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix + ".")}
    if _METADATA_KEY not in metadata or not state:
        raise ValueError(f"{str(path)!r} is not a rewardkit LoRA file (no {_METADATA_KEY} metadata or no {prefix}. keys)")
    settings = json.loads(metadata[_METADATA_KEY])
    inject_adapter_in_model(LoraConfig(**settings), module)
    result = set_peft_model_state_dict(module, state)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [key for key in (getattr(result, "missing_keys", []) or []) if "lora_" in key]
    if unexpected or missing:
        raise ValueError(f"LoRA file {str(path)!r} does not fit the {prefix}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if merge:
        merge_lora(module)
    return module


def load_lora_into_pipeline(pipeline, path: str | os.PathLike[str], *, merge: bool = False, prefix: str = "unet"):
    """Load a LoRA file written by ``save_lora`` into ``pipeline.unet`` (see ``load_lora``)."""
    load_lora(pipeline.unet, path, prefix=prefix, merge=False)
    pipeline.unet.to(pipeline.device)
    if merge:
        merge_lora(pipeline.unet)
    return pipeline


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every LoRA layer into its base layer (``W += scale * B A``) and drop the LoRA modules."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model
