"""Tiny ImageReward files in the official layout, for offline tests and benchmarks (nothing downloads).

``write_imagereward_checkpoint`` writes ``ImageReward.pt`` (a flat state dict with exactly the key names
and nesting of the official ``ImageReward`` model's ``state_dict()``, including BLIP's unused
``vision_proj``/``text_proj`` and the text ``position_ids`` buffer) and ``med_config.json`` for a small
model of the same architecture: ViT (patch 16, 224 px, 197 tokens) and a cross-attention BERT whose
vocabulary keeps the real 30524 rows. ``write_bert_vocab`` writes a bert-base-uncased-style tokenizer
folder whose vocab.txt has exactly 30522 entries (a few hundred real words and ``##`` pieces, padded
with ``[unusedN]``), so that [DEC] and [ENC] get the real ids 30522 and 30523.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["TINY_MED_CONFIG", "TINY_VISION", "REAL_MED_CONFIG", "write_imagereward_checkpoint", "write_bert_vocab"]

# THUDM/ImageReward's med_config.json (BLIP's), real size.
REAL_MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}
TINY_MED_CONFIG = {
    **REAL_MED_CONFIG,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
}
# Vision width and depth (heads = width / 64, as ViT-B/L); the real model is 1024 x 24.
TINY_VISION = {"width": 128, "depth": 2}
REAL_VISION = {"width": 1024, "depth": 24}

_WORDS = """a an the of and in on at to with for from by is are was be this that it its as or
cat cats dog dogs bird fox horse cow sheep fish lion tiger bear wolf rabbit mouse owl eagle
man woman men women child children boy girl people person king queen robot astronaut
red green blue yellow black white orange purple pink brown gray grey golden silver dark light bright
big small large tiny tall short old new young beautiful ugly happy sad detailed realistic cute
photo photograph painting drawing sketch picture image portrait landscape illustration render art style
sitting standing running walking flying jumping swimming eating sleeping riding playing reading
forest tree trees river lake sea ocean beach mountain mountains hill sky cloud clouds sun moon star stars
city street road house castle tower bridge room kitchen garden field snow rain fire water night day
car bus train boat ship bicycle plane table chair bed book cup hat glasses flower flowers
sunset sunrise dawn morning evening winter summer spring autumn fog mist smoke light shadow shadows
oil watercolor digital anime cartoon cinematic lighting high quality resolution sharp focus soft
very highly extremely intricate museum trending award winning masterpiece background foreground
front behind under over near between top bottom left right center two three four many some
one each every all no not but so very much more most dark wearing holding looking under
""".split()
_PIECES = ["##s", "##es", "##ed", "##ing", "##ly", "##er", "##est", "##y", "##a", "##e", "##i", "##o", "##n", "##t"]
_PUNCTUATION = list(".,!?;:'\"-()")


def _vocabulary() -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    head = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = list(dict.fromkeys(_PUNCTUATION + [str(d) for d in range(10)] + letters + _WORDS))
    words += list(dict.fromkeys(_PIECES + [f"##{c}" for c in letters]))
    vocabulary = head + words
    filler = 99
    while len(vocabulary) < 30522:
        vocabulary.append(f"[unused{filler}]")
        filler += 1
    return vocabulary


def write_bert_vocab(folder: str | os.PathLike[str]) -> Path:
    """A bert-base-uncased-style tokenizer folder (vocab.txt of 30522 entries, tokenizer_config.json).

    [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103 as in the real vocabulary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(_vocabulary()) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return folder


def official_state_dict_shapes(med_config: dict, vision_width: int, vision_depth: int) -> dict[str, tuple[int, ...]]:
    """Every key of the official ``ImageReward`` model's ``state_dict()`` with its shape."""
    v, t = vision_width, med_config["hidden_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "blip.visual_encoder.cls_token": (1, 1, v),
        "blip.visual_encoder.pos_embed": (1, 197, v),
        "blip.visual_encoder.patch_embed.proj.weight": (v, 3, 16, 16),
        "blip.visual_encoder.patch_embed.proj.bias": (v,),
    }
    for i in range(vision_depth):
        p = f"blip.visual_encoder.blocks.{i}."
        shapes.update(
            {
                p + "norm1.weight": (v,), p + "norm1.bias": (v,),
                p + "attn.qkv.weight": (3 * v, v), p + "attn.qkv.bias": (3 * v,),
                p + "attn.proj.weight": (v, v), p + "attn.proj.bias": (v,),
                p + "norm2.weight": (v,), p + "norm2.bias": (v,),
                p + "mlp.fc1.weight": (4 * v, v), p + "mlp.fc1.bias": (4 * v,),
                p + "mlp.fc2.weight": (v, 4 * v), p + "mlp.fc2.bias": (v,),
            }
        )  # fmt: skip
    shapes.update({"blip.visual_encoder.norm.weight": (v,), "blip.visual_encoder.norm.bias": (v,)})
    e = "blip.text_encoder.embeddings."
    shapes.update(
        {
            e + "position_ids": (1, med_config["max_position_embeddings"]),
            e + "word_embeddings.weight": (med_config["vocab_size"], t),
            e + "position_embeddings.weight": (med_config["max_position_embeddings"], t),
            e + "LayerNorm.weight": (t,), e + "LayerNorm.bias": (t,),
        }
    )  # fmt: skip
    inner = med_config["intermediate_size"]
    for i in range(med_config["num_hidden_layers"]):
        p = f"blip.text_encoder.encoder.layer.{i}."
        for attention, kv_width in (("attention", t), ("crossattention", v)):
            a = p + attention + "."
            shapes.update(
                {
                    a + "self.query.weight": (t, t), a + "self.query.bias": (t,),
                    a + "self.key.weight": (t, kv_width), a + "self.key.bias": (t,),
                    a + "self.value.weight": (t, kv_width), a + "self.value.bias": (t,),
                    a + "output.dense.weight": (t, t), a + "output.dense.bias": (t,),
                    a + "output.LayerNorm.weight": (t,), a + "output.LayerNorm.bias": (t,),
                }
            )  # fmt: skip
        shapes.update(
            {
                p + "intermediate.dense.weight": (inner, t), p + "intermediate.dense.bias": (inner,),
                p + "output.dense.weight": (t, inner), p + "output.dense.bias": (t,),
                p + "output.LayerNorm.weight": (t,), p + "output.LayerNorm.bias": (t,),
            }
        )  # fmt: skip
    shapes.update(
        {
            "blip.vision_proj.weight": (256, v), "blip.vision_proj.bias": (256,),
            "blip.text_proj.weight": (256, t), "blip.text_proj.bias": (256,),
        }
    )  # fmt: skip
    widths = (t, 1024, 128, 64, 16, 1)
    for index, (a, b) in zip((0, 2, 4, 6, 7), zip(widths[:-1], widths[1:], strict=True), strict=True):
        shapes[f"mlp.layers.{index}.weight"] = (b, a)
        shapes[f"mlp.layers.{index}.bias"] = (b,)
    return shapes


def random_official_state_dict(
    med_config: dict, vision_width: int, vision_depth: int, seed: int = 0, weight_std: float | None = 0.2
) -> dict[str, torch.Tensor]:
    """Random weights in the official layout: normal(0, ``weight_std``) everywhere (0.2, the tiny default,
    so that scores depend visibly on the image; ``None``: 1/sqrt(fan_in) for matrices and convolutions and 0.02 otherwise,
    which the real sizes need: at 0.2 a 1024-wide ViT-L is chaotic, its score moving by 0.85 under 1e-3 of
    input noise), LayerNorm weights 1 + noise, MLP weights scaled by 1/sqrt(fan_in) so scores are O(1)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict: dict[str, torch.Tensor] = {}
    for key, shape in official_state_dict_shapes(med_config, vision_width, vision_depth).items():
        if key.endswith("position_ids"):
            state_dict[key] = torch.arange(shape[1]).expand(shape).clone()
            continue
        tensor = torch.randn(shape, generator=generator)
        if "norm" in key.lower() and key.endswith("weight"):
            tensor = 1.0 + 0.1 * tensor
        elif key.startswith("mlp.") and key.endswith("weight"):
            tensor = tensor / shape[1] ** 0.5
        elif weight_std is not None:
            tensor = weight_std * tensor
        else:
            fan_in = math.prod(shape[1:])
            tensor = tensor / fan_in**0.5 if len(shape) >= 2 and fan_in > 1 else 0.02 * tensor
        state_dict[key] = tensor
    return state_dict


def write_imagereward_checkpoint(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    med_config: dict | None = None,
    vision: dict | None = None,
    weight_std: float | None = 0.2,
) -> Path:
    """Write ``ImageReward.pt`` and ``med_config.json`` (tiny by default) into ``folder``; returns the .pt path.
    ``weight_std``: see ``random_official_state_dict`` (the real sizes pass ``None``)."""
    med_config = dict(med_config or TINY_MED_CONFIG)
    vision = dict(vision or TINY_VISION)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = random_official_state_dict(med_config, vision["width"], vision["depth"], seed, weight_std)
    path = folder / "ImageReward.pt"
    torch.save(state_dict, path)
    (folder / "med_config.json").write_text(json.dumps(med_config, indent=2))
    return path


def tiny_imagereward(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``create_reward("imagereward", **options)`` on the tiny checkpoint and tokenizer."""
    model_dir = Path(folder) / "model"
    write_imagereward_checkpoint(model_dir)
    return {"weights": {"model": str(model_dir), "tokenizer": str(write_bert_vocab(Path(folder) / "tokenizer"))}}
