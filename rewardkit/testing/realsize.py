"""Random-weight checkpoints at the published sizes, in the official file formats, for benchmarks and the
dtype measurements (nothing is downloaded). Each writer returns the ``create_reward`` options that load its
files through the path a user takes, like ``tiny_reward_options`` does for the tiny fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["REAL_SIZE_REWARDS", "real_size_reward_options"]

REAL_SIZE_REWARDS = ("hpsv2", "imagereward", "dover", "pickscore", "aesthetic", "clip")


def real_size_reward_options(name: str, folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Write reward ``name``'s real-size random files into ``folder`` (one of ``REAL_SIZE_REWARDS``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if name == "hpsv2":
        from rewardkit.testing.clip import write_hps_checkpoint

        return {"weights": str(write_hps_checkpoint(folder / "HPS_v2.1_compressed.pt", "ViT-H-14")), "architecture": "ViT-H-14"}
    if name == "pickscore":
        from transformers import CLIPConfig, CLIPModel

        from rewardkit.testing.clip import write_pickscore_folders

        model_dir, processor_dir = write_pickscore_folders(folder)
        config = CLIPConfig(  # laion/CLIP-ViT-H-14's sizes
            text_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                         "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu"},
            vision_config={"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
                           "image_size": 224, "patch_size": 14, "hidden_act": "gelu"},
            projection_dim=1024,
        )
        CLIPModel(config).save_pretrained(model_dir)
        return {"weights": {"model": str(model_dir), "processor": str(processor_dir)}}
    if name == "imagereward":
        from rewardkit.testing.imagereward import (
            REAL_MED_CONFIG,
            REAL_VISION,
            write_bert_vocab,
            write_imagereward_checkpoint,
        )

        checkpoint = write_imagereward_checkpoint(folder / "model", seed=0, med_config=REAL_MED_CONFIG, vision=REAL_VISION, weight_std=None)
        return {"weights": {"model": str(checkpoint), "tokenizer": str(write_bert_vocab(folder / "tokenizer"))}}
    if name == "dover":
        from rewardkit.rewards.dover import DOVER_CONFIG
        from rewardkit.testing.dover import write_dover_checkpoint

        return {"weights": str(write_dover_checkpoint(folder / "DOVER.pth", DOVER_CONFIG, seed=0, centred_heads=True))}
    if name in ("clip", "aesthetic"):  # OpenAI ViT-L/14 (QuickGELU), as open_clip's Hub file
        from rewardkit.testing.clip import write_aesthetic_head, write_open_clip_safetensors

        backbone = folder / "open_clip_model.safetensors"
        if not backbone.exists():
            write_open_clip_safetensors(backbone, "ViT-L-14", quick_gelu=True)
        if name == "clip":
            return {"weights": str(backbone)}
        head = write_aesthetic_head(folder / "sac+logos+ava1-l14-linearMSE.pth", "laion", embed_dim=768)
        return {"weights": {"head": str(head), "backbone": str(backbone)}}
    raise ValueError(f"no real-size random files for reward {name!r}; known: {', '.join(REAL_SIZE_REWARDS)}")
