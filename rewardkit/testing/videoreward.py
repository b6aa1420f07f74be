"""Tiny VideoReward (VideoAlign) files in the official layouts, for offline tests (nothing downloads).

``write_videoreward_files(root)`` writes two folders:

* ``root/Qwen2-VL-2B-Instruct``, laid out as the Hugging Face repo ``Qwen/Qwen2-VL-2B-Instruct`` minus its
  weights: ``config.json`` (the published flat format: text settings at the top level, ``vision_config``,
  ``rope_scaling`` ``mrope``), ``preprocessor_config.json``, ``chat_template.json``, ``generation_config.json``
  and the tokenizer files, for a small model of the same architecture;
* ``root/VideoReward``, laid out as ``KwaiVGI/VideoReward``: ``model_config.json`` (the four config sections
  the official ``inference.py`` reads, with the released values) and ``checkpoint-11352/`` holding
  ``model.pth`` and ``tokenizer/``.

``model.pth`` is what the official trainer saves with ``save_full_model``: the ``state_dict()`` of the
PEFT-wrapped ``Qwen2VLRewardModelBT`` in bf16, with transformers 4.45's key names (listed independently of
rewardkit's loader by ``official_state_dict_shapes``), un-merged LoRA (``base_layer`` + ``lora_A``/``lora_B``)
on the decoder's projections and the LM head stored beside the (tied) embedding. The tokenizer is a
byte-level BPE with Qwen2's pre-tokenizer, trained on the VideoReward prompt (1024 entries), followed by
Qwen2-VL's 14 special tokens and, in the checkpoint's copy, the three reward tokens, so that ids, chat
template and embedding rows relate as in the real files (151643.. there, 1024.. here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = [
    "QWEN2VL_SPECIAL_TOKENS",
    "REWARD_TOKENS",
    "QWEN2VL_CHAT_TEMPLATE",
    "REAL_BASE_CONFIG",
    "TINY_BASE_CONFIG",
    "PREPROCESSOR_CONFIG",
    "model_config_json",
    "official_state_dict_shapes",
    "write_qwen2vl_tokenizer",
    "write_videoreward_files",
]

QWEN2VL_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
REWARD_TOKENS = ("<|VQ_reward|>", "<|MQ_reward|>", "<|TA_reward|>")
TINY_BPE_SIZE = 1024
# Qwen2-VL-2B-Instruct's chat template (its chat_template.json and tokenizer_config.json).
QWEN2VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen2-VL-2B-Instruct's config.json (the flat format of transformers 4.41).
REAL_BASE_CONFIG = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 1536,
    "initializer_range": 0.02,
    "intermediate_size": 8960,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "model_type": "qwen2_vl",
    "num_attention_heads": 12,
    "num_hidden_layers": 28,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.41.2",
    "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "hidden_size": 1536,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 151936,
}  # fmt: skip


def _tiny_ids() -> dict[str, int]:
    ids = {token: TINY_BPE_SIZE + index for index, token in enumerate(QWEN2VL_SPECIAL_TOKENS)}
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }


# The same architecture, small: head width 16 (mrope sections sum to 8), vision head width 16.
TINY_BASE_CONFIG = {
    **REAL_BASE_CONFIG,
    **_tiny_ids(),
    "hidden_size": 64,
    "intermediate_size": 128,
    "max_window_layers": 2,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "vision_config": {**REAL_BASE_CONFIG["vision_config"], "depth": 2, "embed_dim": 32, "num_heads": 2, "hidden_size": 64},
    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    "vocab_size": TINY_BPE_SIZE + 24,  # padded beyond the tokenizer, as 151936 > 151657
}

PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}


def model_config_json(base: str, *, output_dim: int = 1, lora_r: int = 64, lora_alpha: int = 128) -> dict:
    """``model_config.json`` as ``train_reward.py: save_configs_to_json`` writes it, with the released
    settings (``train.sh``: fps 2, 200704 pixels, detailed_special, special reward tokens, LoRA excluding
    ``visual``) and the ``inference_config`` normalisation; ``base`` is ``model_name_or_path``."""
    return {
        "data_config": {
            "meta_data": "/path/to/dataset/meta_data.csv", "data_dir": "/path/to/dataset", "meta_data_test": None,
            "max_frame_pixels": 200704, "num_frames": None, "fps": 2.0, "p_shuffle_frames": 0.0,
            "p_color_jitter": 0.0, "eval_dim": ["VQ", "MQ", "TA"], "prompt_template_type": "detailed_special",
            "add_noise": False, "sample_type": "uniform", "use_tied_data": True,
        },
        "training_args": {"output_dir": "rm_output", "bf16": True, "learning_rate": 2e-06, "num_train_epochs": 3},
        "model_config": {
            "model_name_or_path": base, "model_revision": "main", "output_dim": output_dim,
            "use_special_tokens": True, "freeze_vision_tower": False, "freeze_llm": False, "tune_merger": True,
            "torch_dtype": "bfloat16", "trust_remote_code": False, "attn_implementation": None,
            "load_in_8bit": False, "load_in_4bit": False, "bnb_4bit_quant_type": "nf4",
            "use_bnb_nested_quant": False, "reward_token": "special", "loss_type": "btt",
        },
        "peft_lora_config": {
            "lora_enable": True, "vision_lora": False, "lora_r": lora_r, "lora_alpha": lora_alpha,
            "lora_dropout": 0.05, "lora_target_modules": None,
            "lora_namespan_exclude": ["lm_head", "rm_head", "embed_tokens", "visual"],
            "lora_modules_to_save": None, "lora_task_type": "CAUSAL_LM", "use_rslora": False, "num_lora_modules": -1,
        },
        "inference_config": {
            "VQ_mean": 3.6757, "VQ_std": 2.2476, "MQ_mean": 1.1646, "MQ_std": 1.3811,
            "TA_mean": 2.8105, "TA_std": 2.5121,
        },
    }  # fmt: skip


def official_state_dict_shapes(
    config: dict, *, vocab_rows: int, output_dim: int = 1, lora_r: int | None = 64
) -> dict[str, tuple[int, ...]]:
    """Every key of the official ``model.pth`` with its shape, for a flat Qwen2-VL ``config``.

    transformers 4.45's ``Qwen2VLForConditionalGeneration`` names (``visual.*``, ``model.*``, ``lm_head``)
    plus ``rm_head``; with ``lora_r``, PEFT's ``base_model.model.`` prefix and LoRA on every decoder
    projection (``train_reward.py``: every Linear outside ``lm_head``, ``rm_head``, ``embed_tokens``,
    ``visual``)."""
    vision = config["vision_config"]
    width, depth, merge = vision["embed_dim"], vision["depth"], vision["spatial_merge_size"]
    mlp = width * vision["mlp_ratio"]
    merged = width * merge**2
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    head_dim = hidden // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    patch = (width, vision.get("in_chans", 3), vision["temporal_patch_size"], vision["patch_size"], vision["patch_size"])
    shapes: dict[str, tuple[int, ...]] = {"visual.patch_embed.proj.weight": patch}
    for block in range(depth):
        p = f"visual.blocks.{block}."
        shapes.update(
            {
                p + "norm1.weight": (width,), p + "norm1.bias": (width,),
                p + "norm2.weight": (width,), p + "norm2.bias": (width,),
                p + "attn.qkv.weight": (3 * width, width), p + "attn.qkv.bias": (3 * width,),
                p + "attn.proj.weight": (width, width), p + "attn.proj.bias": (width,),
                p + "mlp.fc1.weight": (mlp, width), p + "mlp.fc1.bias": (mlp,),
                p + "mlp.fc2.weight": (width, mlp), p + "mlp.fc2.bias": (width,),
            }
        )  # fmt: skip
    shapes.update(
        {
            "visual.merger.ln_q.weight": (width,), "visual.merger.ln_q.bias": (width,),
            "visual.merger.mlp.0.weight": (merged, merged), "visual.merger.mlp.0.bias": (merged,),
            "visual.merger.mlp.2.weight": (vision["hidden_size"], merged), "visual.merger.mlp.2.bias": (vision["hidden_size"],),
            "model.embed_tokens.weight": (vocab_rows, hidden),
        }
    )  # fmt: skip
    projections = {
        "self_attn.q_proj": (hidden, hidden, True), "self_attn.k_proj": (kv, hidden, True),
        "self_attn.v_proj": (kv, hidden, True), "self_attn.o_proj": (hidden, hidden, False),
        "mlp.gate_proj": (inner, hidden, False), "mlp.up_proj": (inner, hidden, False),
        "mlp.down_proj": (hidden, inner, False),
    }  # fmt: skip
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        for name, (out_features, in_features, bias) in projections.items():
            if lora_r is None:
                shapes[f"{p}{name}.weight"] = (out_features, in_features)
                if bias:
                    shapes[f"{p}{name}.bias"] = (out_features,)
                continue
            shapes[f"{p}{name}.base_layer.weight"] = (out_features, in_features)
            if bias:
                shapes[f"{p}{name}.base_layer.bias"] = (out_features,)
            shapes[f"{p}{name}.lora_A.default.weight"] = (lora_r, in_features)
            shapes[f"{p}{name}.lora_B.default.weight"] = (out_features, lora_r)
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
    shapes.update(
        {"model.norm.weight": (hidden,), "lm_head.weight": (vocab_rows, hidden), "rm_head.weight": (output_dim, hidden)}
    )
    prefix = "" if lora_r is None else "base_model.model."
    return {prefix + key: shape for key, shape in shapes.items()}


def _random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random bf16 weights that make a tiny model's rewards depend visibly on video and text: linear maps
    scaled by 1/sqrt(fan_in), norms 1 + noise, biases and LoRA B small but non-zero (a LoRA that is not
    merged, or merged with the wrong scale, changes the scores)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        tensor = torch.randn(shape, generator=generator)
        if "norm" in key or "ln_q" in key:
            tensor = 1.0 + 0.1 * tensor if key.endswith("weight") else 0.1 * tensor
        elif key.endswith("bias"):
            tensor = 0.1 * tensor
        elif "lora_B" in key:
            tensor = 0.5 * tensor / shape[1] ** 0.5
        elif len(shape) >= 2 and "embed_tokens" not in key and not key.endswith("lm_head.weight"):
            tensor = tensor / (tensor[0].numel()) ** 0.5
        state_dict[key] = tensor.to(torch.bfloat16)
    prefix = "base_model.model." if any(key.startswith("base_model.") for key in shapes) else ""
    state_dict[prefix + "lm_head.weight"] = state_dict[prefix + "model.embed_tokens.weight"].clone()  # tied
    return state_dict


def _train_bpe() -> object:
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    from rewardkit.rewards.videoreward import PROMPT_TEMPLATE

    split = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    corpus = [PROMPT_TEMPLATE, "a red fox running in the snow; a cat, a dog and a robot dancing in the rain at night"]
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_BPE_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    if tokenizer.get_vocab_size() != TINY_BPE_SIZE:
        raise RuntimeError(f"the tiny BPE has {tokenizer.get_vocab_size()} entries, expected {TINY_BPE_SIZE}")
    return tokenizer


def write_qwen2vl_tokenizer(folder: str | os.PathLike[str], *, reward_tokens: bool) -> Path:
    """A Qwen2-style tokenizer folder as transformers 4.45 saves it (``tokenizer.json``,
    ``tokenizer_config.json`` with the chat template, ``vocab.json``, ``merges.txt``, ``added_tokens.json``,
    ``special_tokens_map.json``); ``reward_tokens`` appends the three reward tokens (the checkpoint's copy)."""
    from tokenizers import AddedToken

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_bpe()
    added = list(QWEN2VL_SPECIAL_TOKENS) + (list(REWARD_TOKENS) if reward_tokens else [])
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in added])
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))
    ids = {token: TINY_BPE_SIZE + index for index, token in enumerate(added)}
    extra = list(REWARD_TOKENS) if reward_tokens else list(QWEN2VL_SPECIAL_TOKENS[1:])
    decoder = {
        str(index): {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
        for token, index in ids.items()
    }
    settings = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": extra,
        "bos_token": None,
        "chat_template": QWEN2VL_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "padding_side": "right" if reward_tokens else "left",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2))
    (folder / "added_tokens.json").write_text(json.dumps(ids, indent=2))
    special = {"additional_special_tokens": extra, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return folder


def write_videoreward_files(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    output_dim: int = 1,
    base_name: str | None = None,
    lora_r: int = 4,
    lora_alpha: int = 8,
) -> tuple[Path, Path]:
    """Write the tiny base folder and VideoReward folder under ``root``; returns (videoreward, base).

    ``model_config.json`` names the base by its absolute path (so ``create_reward("videoreward",
    weights=<videoreward>)`` finds it) unless ``base_name`` is given (e.g. ``Qwen/Qwen2-VL-2B-Instruct`` for
    files placed in a Hugging Face cache)."""
    root = Path(root)
    base, videoreward = root / "Qwen2-VL-2B-Instruct", root / "VideoReward"
    checkpoint = videoreward / "checkpoint-11352"
    base.mkdir(parents=True, exist_ok=True)
    checkpoint.mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps(TINY_BASE_CONFIG, indent=2))
    (base / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    (base / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2VL_CHAT_TEMPLATE}, indent=2))
    generation = {"bos_token_id": TINY_BASE_CONFIG["bos_token_id"], "eos_token_id": TINY_BASE_CONFIG["eos_token_id"]}
    (base / "generation_config.json").write_text(json.dumps(generation, indent=2))
    write_qwen2vl_tokenizer(base, reward_tokens=False)
    tokenizer = write_qwen2vl_tokenizer(checkpoint / "tokenizer", reward_tokens=True)
    vocab_rows = len(json.loads((tokenizer / "added_tokens.json").read_text())) + TINY_BPE_SIZE
    shapes = official_state_dict_shapes(TINY_BASE_CONFIG, vocab_rows=vocab_rows, output_dim=output_dim, lora_r=lora_r)
    torch.save(_random_state_dict(shapes, seed), checkpoint / "model.pth")
    settings = model_config_json(base_name or str(base.resolve()), output_dim=output_dim, lora_r=lora_r, lora_alpha=lora_alpha)
    (videoreward / "model_config.json").write_text(json.dumps(settings, indent=4))
    return videoreward, base


def tiny_videoreward(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("videoreward", **options)`` on the tiny VideoReward and Qwen2-VL folders."""
    videoreward, _ = write_videoreward_files(folder)
    return {"weights": str(videoreward)}
