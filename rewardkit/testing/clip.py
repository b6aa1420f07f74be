"""Tiny open_clip / CLIP checkpoints in the official layouts: HPS v2, open_clip safetensors, PickScore
folders, the aesthetic heads, and the CLIP BPE vocabulary the tokenizer fixtures share."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TINY_OPEN_CLIP",
    "clip_bpe_vocabulary",
    "write_open_clip_config",
    "write_hps_checkpoint",
    "write_open_clip_safetensors",
    "write_pickscore_folders",
    "write_aesthetic_head",
    "write_tiny_hps",
]

# open_clip ViT-H-14's structure (GELU, head width 80 -> here 32, patch 14, 224 px, 77 tokens, CLIP BPE
# vocabulary) scaled down to a few layers so it builds in milliseconds.
TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_open_clip_config(folder: str | os.PathLike[str], name: str = "tiny-ViT-H-14") -> Path:
    """An open_clip JSON model config (``architecture=`` accepts its path)."""
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_OPEN_CLIP, indent=2))
    return path


def _random_open_clip(architecture: str, seed: int, quick_gelu: bool = False) -> torch.nn.Module:
    from rewardkit.rewards.clip import build_open_clip

    torch.manual_seed(seed)
    model, _ = build_open_clip(architecture, quick_gelu=quick_gelu)
    # open_clip initialises some tensors to constants (e.g. zero biases); perturb all of them so every
    # weight matters and a wrongly mapped key changes the scores.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    return model


def write_hps_checkpoint(
    path: str | os.PathLike[str], architecture: str, *, seed: int = 0, dtype: torch.dtype = torch.float16
) -> Path:
    """An HPS checkpoint as published: ``torch.save({"state_dict": <open_clip state dict>})`` in fp16
    ("compressed"). ``architecture`` is ``ViT-H-14`` for the real size or a JSON config path."""
    model = _random_open_clip(architecture, seed)
    state_dict = {key: value.to(dtype) if value.is_floating_point() else value for key, value in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state_dict}, path)
    return path


def write_open_clip_safetensors(
    path: str | os.PathLike[str], architecture: str, *, seed: int = 0, quick_gelu: bool = False
) -> Path:
    """An open_clip checkpoint as on the Hub (``open_clip_model.safetensors``, flat open_clip keys)."""
    from safetensors.torch import save_file

    model = _random_open_clip(architecture, seed, quick_gelu=quick_gelu)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    return path


def clip_bpe_vocabulary() -> tuple[dict[str, int], list[str]]:
    """The CLIP BPE vocabulary and merges, rebuilt from open_clip's bundled file (the same one HF's
    CLIPTokenizer files hold, with HF's names for the start and end tokens)."""
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocabulary = {renamed.get(token, token): index for token, index in tokenizer.encoder.items()}
    merges = [" ".join(pair) for pair, _ in sorted(tokenizer.bpe_ranks.items(), key=lambda item: item[1])]
    return vocabulary, merges


def write_pickscore_folders(folder: str | os.PathLike[str], *, seed: int = 0) -> tuple[Path, Path]:
    """A PickScore_v1-style model folder (transformers CLIPModel ``save_pretrained``) and a processor
    folder in the layout of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (image processor + CLIP tokenizer)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = Path(folder)
    model_dir, processor_dir = folder / "PickScore_v1", folder / "processor"
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu"},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 14, "hidden_act": "gelu"},
        projection_dim=32,
        logit_scale_init_value=4.6052,
    )
    model = CLIPModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    model.save_pretrained(model_dir)

    vocabulary, merges = clip_bpe_vocabulary()
    processor_dir.mkdir(parents=True, exist_ok=True)
    (processor_dir / "vocab.json").write_text(json.dumps(vocabulary))
    (processor_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(processor_dir / "vocab.json"), str(processor_dir / "merges.txt"))
    tokenizer.save_pretrained(processor_dir)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    image_processor.save_pretrained(processor_dir)
    return model_dir, processor_dir


def write_aesthetic_head(
    path: str | os.PathLike[str], head: str = "laion", *, embed_dim: int = 768, seed: int = 0
) -> Path:
    """An aesthetic head in its official layout, saved with ``torch.save`` as a flat state dict.

    ``laion``: the improved predictor's MLP (``layers.{0,2,4,6,7}.{weight,bias}``, 768 -> 1024 -> 128 -> 64
    -> 16 -> 1), its storages tagged ``cuda:0`` as in ``sac+logos+ava1-l14-linearMSE.pth`` (so loading it
    without ``map_location`` fails on a CPU-only machine, exactly like the real file). ``vbench``: LAION's
    ``nn.Linear(768, 1)`` (``weight``, ``bias``; saved on CPU, as ``sa_0_4_vit_l_14_linear.pth``).
    ``embed_dim`` is the input width (768 for CLIP ViT-L/14; the tiny open_clip config's is 32).
    """
    import io
    from collections import OrderedDict

    torch.manual_seed(seed)
    if head == "laion":
        layers = torch.nn.Sequential(
            torch.nn.Linear(embed_dim, 1024), torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64), torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )
        state_dict = OrderedDict((f"layers.{key}", value) for key, value in layers.state_dict().items())
    elif head == "vbench":
        state_dict = torch.nn.Linear(embed_dim, 1).state_dict()
    else:
        raise ValueError(f"head must be 'laion' or 'vbench', got {head!r}")
    # Norm-preserving random weights (PyTorch's default init shrinks a 5-layer linear chain ~16x, which
    # would make every image score alike) and a final bias of 5, so tiny scores look like real ones (~1-10).
    with torch.no_grad():
        for key, value in state_dict.items():
            if key.endswith("weight"):
                value.copy_(torch.randn_like(value) / value.shape[1] ** 0.5)
            else:
                value.copy_(torch.randn_like(value) * 0.1)
        state_dict[next(reversed(state_dict))].add_(5.0)
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    if head == "laion":
        data = _retag_storages(data, "cuda:0")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _retag_storages(archive: bytes, location: str) -> bytes:
    """Rewrite the storage location recorded in a ``torch.save`` archive (``cpu`` -> e.g. ``cuda:0``), as if
    the tensors had been saved from that device; the tensor bytes are unchanged."""
    import io
    import struct
    import zipfile

    old = b"X" + struct.pack("<I", 3) + b"cpu"
    new = b"X" + struct.pack("<I", len(location)) + location.encode()
    source = zipfile.ZipFile(io.BytesIO(archive))
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_STORED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("/data.pkl"):
                if data.count(old) != 1:
                    raise RuntimeError("unexpected torch.save pickle layout; cannot retag the storage location")
                data = data.replace(old, new)
            target.writestr(name, data)
    return output.getvalue()


def write_tiny_hps(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The tiny HPS checkpoint and its open_clip config, seeded (the same bytes on every run): what CI's
    regression check scores the examples with. Returns ``(checkpoint, config)``."""
    config = write_open_clip_config(folder)
    return write_hps_checkpoint(Path(folder) / "HPS_v2.1_compressed.pt", str(config)), config


# ------------------------------------------------------------------ the tiny fixtures of TINY_REWARDS


def _tiny_backbone(folder: Path, *, quick_gelu: bool = False) -> tuple[Path, Path]:
    """The tiny open_clip config and checkpoint in ``folder`` (written once)."""
    config = write_open_clip_config(folder)
    checkpoint = folder / ("open_clip_model_quickgelu.safetensors" if quick_gelu else "open_clip_model.safetensors")
    if not checkpoint.exists():
        write_open_clip_safetensors(checkpoint, str(config), quick_gelu=quick_gelu)
    return config, checkpoint


def tiny_hpsv2(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("hpsv2", **options)`` on the tiny HPS checkpoint."""
    checkpoint, config = write_tiny_hps(folder)
    return {"weights": str(checkpoint), "architecture": str(config)}


def tiny_patch(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``patch`` over the tiny hpsv2 (its default base)."""
    return {"base": "hpsv2", **tiny_hpsv2(folder)}


def tiny_clip(folder: str | os.PathLike[str]) -> dict[str, str]:
    config, checkpoint = _tiny_backbone(Path(folder))
    return {"weights": str(checkpoint), "architecture": str(config)}


def tiny_pickscore(folder: str | os.PathLike[str]) -> dict[str, Any]:
    model_dir, processor_dir = write_pickscore_folders(folder)
    return {"weights": {"model": str(model_dir), "processor": str(processor_dir)}}


def tiny_aesthetic(folder: str | os.PathLike[str]) -> dict[str, Any]:
    config, checkpoint = _tiny_backbone(Path(folder))
    head = write_aesthetic_head(Path(folder) / "sac+logos+ava1-l14-linearMSE.pth", "laion", embed_dim=TINY_OPEN_CLIP["embed_dim"])
    return {"weights": {"head": str(head), "backbone": str(checkpoint)}, "architecture": str(config)}


def tiny_aesthetic_quality(folder: str | os.PathLike[str]) -> dict[str, Any]:
    config, checkpoint = _tiny_backbone(Path(folder))
    head = write_aesthetic_head(Path(folder) / "sa_0_4_vit_l_14_linear.pth", "vbench", embed_dim=TINY_OPEN_CLIP["embed_dim"])
    return {"weights": {"head": str(head), "backbone": str(checkpoint)}, "architecture": str(config)}


def tiny_background_consistency(folder: str | os.PathLike[str]) -> dict[str, str]:
    config, checkpoint = _tiny_backbone(Path(folder))
    return {"weights": str(checkpoint), "architecture": str(config)}


def tiny_appearance_style(folder: str | os.PathLike[str]) -> dict[str, str]:
    """ViT-B/32 OpenAI uses QuickGELU, so the tiny backbone does too."""
    config, checkpoint = _tiny_backbone(Path(folder), quick_gelu=True)
    return {"weights": str(checkpoint), "architecture": str(config)}
