"""Tiny VideoScore checkpoints in the official Hugging Face layout, for offline tests (nothing downloads).

``write_videoscore_checkpoint`` writes a folder laid out like ``TIGER-Lab/VideoScore`` (and
``VideoScore-v1.1``): ``config.json`` as transformers 4.4x serialises Mantis' ``Idefics2ForSequenceClassification``
(full sub-configs, ``architectures``, ``id2label`` of 5 labels, no top-level ``pad_token_id``), the weights as
safetensors shards with ``model.safetensors.index.json`` and the official key names (``model.vision_model.*``,
``model.connector.*``, ``model.text_model.*``, ``score.weight``, ``score.bias``), the official
``preprocessor_config.json`` and ``processor_config.json``, and a small Llama/Mistral-style tokenizer.

The model is tiny (widths 32, two layers everywhere) but keeps every fixed constant of the real one that the
pipeline depends on: 980 px / patch 14 vision positions, 64 perceiver latents per image, the 32003-token
vocabulary with ``<fake_token_around_image>`` = 32000, ``<image>`` = 32001 and ``<end_of_utterance>`` = 32002.

The tokenizer is a byte-fallback BPE in the legacy Mistral ``tokenizer.json`` form (Mistral-7B-v0.1, on which
Idefics2 builds): normaliser ``Prepend("▁")`` + ``Replace(" ", "▁")``, no pre-tokeniser, ``<s>`` added by a
template post-processor; ids 0-2 are ``<unk>``, ``<s>``, ``</s>``, 3-258 the byte tokens ``<0x00>``..``<0xFF>``,
then merges learnt on English text, padded with unreachable filler tokens to 32000 entries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TINY_VIDEOSCORE",
    "REAL_VIDEOSCORE",
    "PREPROCESSOR_CONFIG",
    "PROCESSOR_CONFIG",
    "videoscore_config",
    "official_state_dict_shapes",
    "write_llama_tokenizer",
    "write_videoscore_checkpoint",
]

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
IMAGE_TOKENS = ("<fake_token_around_image>", "<image>", "<end_of_utterance>")  # ids 32000, 32001, 32002
BASE_VOCAB_SIZE = 32000

# TIGER-Lab/VideoScore(-v1.1) preprocessor_config.json and processor_config.json, verbatim.
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_image_splitting": False,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Idefics2ImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Idefics2Processor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 980, "shortest_edge": 378},
}
PROCESSOR_CONFIG = {"image_seq_len": 64, "processor_class": "Idefics2Processor"}

# Architecture sizes. REAL_VIDEOSCORE: Mantis-8B-Idefics2 (SigLIP-so400m at 980 px, perceiver with 64 latents,
# Mistral-7B); TINY_VIDEOSCORE keeps the fixed constants (image size, patch, latents, vocabulary) and shrinks widths.
REAL_VIDEOSCORE = {
    "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16},
    "perceiver": {"resampler_depth": 3, "resampler_n_heads": 16, "resampler_head_dim": 96, "num_key_value_heads": 4},
    "text": {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8,
    },
}  # fmt: skip
TINY_VIDEOSCORE = {
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    "perceiver": {"resampler_depth": 2, "resampler_n_heads": 2, "resampler_head_dim": 8, "num_key_value_heads": 1},
    "text": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
    },
}  # fmt: skip

# The generic PretrainedConfig fields transformers 4.4x writes into every sub-config of config.json.
_GENERIC_FIELDS: dict[str, Any] = {
    "_name_or_path": "", "add_cross_attention": False, "architectures": None, "bad_words_ids": None,
    "begin_suppress_tokens": None, "bos_token_id": None, "chunk_size_feed_forward": 0,
    "cross_attention_hidden_size": None, "decoder_start_token_id": None, "diversity_penalty": 0.0,
    "do_sample": False, "early_stopping": False, "encoder_no_repeat_ngram_size": 0, "eos_token_id": None,
    "exponential_decay_length_penalty": None, "finetuning_task": None, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_decoder": False,
    "is_encoder_decoder": False, "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "length_penalty": 1.0,
    "max_length": 20, "min_length": 0, "no_repeat_ngram_size": 0, "num_beam_groups": 1, "num_beams": 1,
    "num_return_sequences": 1, "output_attentions": False, "output_hidden_states": False, "output_scores": False,
    "pad_token_id": None, "prefix": None, "problem_type": None, "pruned_heads": {}, "remove_invalid_values": False,
    "repetition_penalty": 1.0, "return_dict": True, "return_dict_in_generate": False, "sep_token_id": None,
    "suppress_tokens": None, "task_specific_params": None, "temperature": 1.0, "tf_legacy_loss": False,
    "tie_encoder_decoder": False, "tie_word_embeddings": True, "tokenizer_class": None, "top_k": 50, "top_p": 1.0,
    "torch_dtype": None, "torchscript": False, "typical_p": 1.0, "use_bfloat16": False,
}  # fmt: skip


def videoscore_config(sizes: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """``config.json`` of a VideoScore checkpoint (as Mantis' training saved it) with the given sizes."""
    sizes = sizes or TINY_VIDEOSCORE
    text_width = sizes["text"]["hidden_size"]
    vision = {
        **_GENERIC_FIELDS, **sizes["vision"], "attention_dropout": 0.0, "hidden_act": "gelu_pytorch_tanh",
        "image_size": 980, "initializer_range": 0.02, "layer_norm_eps": 1e-6, "model_type": "idefics2",
        "num_channels": 3, "patch_size": 14,
    }  # fmt: skip
    perceiver = {
        **_GENERIC_FIELDS, **sizes["perceiver"], "attention_dropout": 0.0, "hidden_act": "silu",
        "hidden_size": text_width, "model_type": "idefics2", "resampler_n_latents": 64,
    }  # fmt: skip
    text = {
        **_GENERIC_FIELDS, **sizes["text"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "initializer_range": 0.02, "max_position_embeddings": 32768, "model_type": "mistral",
        "pad_token_id": 0, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096,
        "tie_word_embeddings": False, "use_cache": True, "vocab_size": BASE_VOCAB_SIZE + len(IMAGE_TOKENS),
    }  # fmt: skip
    labels = {str(index): f"LABEL_{index}" for index in range(5)}
    return {
        "_name_or_path": "TIGER-Lab/Mantis-8B-Idefics2",
        "architectures": ["Idefics2ForSequenceClassification"],
        "id2label": labels,
        "image_token_id": 32001,
        "label2id": {name: int(index) for index, name in labels.items()},
        "model_type": "idefics2",
        "perceiver_config": dict(sorted(perceiver.items())),
        "problem_type": "regression",
        "text_config": dict(sorted(text.items())),
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.0.dev0",
        "use_cache": True,
        "vision_config": dict(sorted(vision.items())),
    }


def official_state_dict_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every key of Mantis' ``Idefics2ForSequenceClassification`` state dict with its shape, for ``config``."""
    vision, perceiver, text = config["vision_config"], config["perceiver_config"], config["text_config"]
    v, v_inner = vision["hidden_size"], vision["intermediate_size"]
    t, t_inner = text["hidden_size"], text["intermediate_size"]
    head_dim = t // text["num_attention_heads"]
    kv = text["num_key_value_heads"] * head_dim
    positions = (vision["image_size"] // vision["patch_size"]) ** 2
    shapes: dict[str, tuple[int, ...]] = {
        "model.vision_model.embeddings.patch_embedding.weight": (v, 3, vision["patch_size"], vision["patch_size"]),
        "model.vision_model.embeddings.patch_embedding.bias": (v,),
        "model.vision_model.embeddings.position_embedding.weight": (positions, v),
        "model.vision_model.post_layernorm.weight": (v,),
        "model.vision_model.post_layernorm.bias": (v,),
    }
    for i in range(vision["num_hidden_layers"]):
        p = f"model.vision_model.encoder.layers.{i}."
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[p + f"self_attn.{projection}.weight"] = (v, v)
            shapes[p + f"self_attn.{projection}.bias"] = (v,)
        shapes.update(
            {
                p + "layer_norm1.weight": (v,), p + "layer_norm1.bias": (v,),
                p + "layer_norm2.weight": (v,), p + "layer_norm2.bias": (v,),
                p + "mlp.fc1.weight": (v_inner, v), p + "mlp.fc1.bias": (v_inner,),
                p + "mlp.fc2.weight": (v, v_inner), p + "mlp.fc2.bias": (v,),
            }
        )  # fmt: skip
    c = "model.connector."
    shapes.update(
        {
            c + "modality_projection.gate_proj.weight": (t_inner, v),
            c + "modality_projection.up_proj.weight": (t_inner, v),
            c + "modality_projection.down_proj.weight": (t, t_inner),
            c + "perceiver_resampler.latents": (perceiver["resampler_n_latents"], t),
            c + "perceiver_resampler.norm.weight": (t,),
        }
    )
    heads, heads_dim = perceiver["resampler_n_heads"], perceiver["resampler_head_dim"]
    kv_heads = perceiver["num_key_value_heads"]
    for i in range(perceiver["resampler_depth"]):
        p = f"{c}perceiver_resampler.layers.{i}."
        shapes.update(
            {
                p + "input_latents_norm.weight": (t,), p + "input_context_norm.weight": (t,),
                p + "post_attention_layernorm.weight": (t,),
                p + "self_attn.q_proj.weight": (heads * heads_dim, t),
                p + "self_attn.k_proj.weight": (kv_heads * heads_dim, t),
                p + "self_attn.v_proj.weight": (kv_heads * heads_dim, t),
                p + "self_attn.o_proj.weight": (t, heads * heads_dim),
                p + "mlp.gate_proj.weight": (4 * t, t), p + "mlp.up_proj.weight": (4 * t, t),
                p + "mlp.down_proj.weight": (t, 4 * t),
            }
        )  # fmt: skip
    shapes["model.text_model.embed_tokens.weight"] = (text["vocab_size"], t)
    for i in range(text["num_hidden_layers"]):
        p = f"model.text_model.layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (t, t), p + "self_attn.k_proj.weight": (kv, t),
                p + "self_attn.v_proj.weight": (kv, t), p + "self_attn.o_proj.weight": (t, t),
                p + "mlp.gate_proj.weight": (t_inner, t), p + "mlp.up_proj.weight": (t_inner, t),
                p + "mlp.down_proj.weight": (t, t_inner),
                p + "input_layernorm.weight": (t,), p + "post_attention_layernorm.weight": (t,),
            }
        )  # fmt: skip
    shapes.update({"model.text_model.norm.weight": (t,), "score.weight": (5, t), "score.bias": (5,)})
    return shapes


def _random_state_dict(config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random weights with O(1) activations: norms near 1, matrices scaled by 1/sqrt(fan_in), embeddings N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key, shape in official_state_dict_shapes(config).items():
        tensor = torch.randn(shape, generator=generator)
        if "norm" in key and key.endswith("weight"):
            tensor = 1.0 + 0.1 * tensor
        elif key.endswith("bias"):
            tensor = 0.1 * tensor
        elif len(shape) >= 2 and "embed" not in key and not key.endswith("latents"):
            tensor = tensor / (torch.tensor(shape[1:]).prod().float().sqrt())
        state_dict[key] = tensor.contiguous()
    return state_dict


_CORPUS = """
Suppose you are an expert in judging and evaluating the quality of AI-generated videos, please watch the
following frames of a given video and see the text prompt for generating the video, then give scores from
5 different dimensions: visual quality, temporal consistency, dynamic degree, text-to-video alignment and
factual consistency. The quality of the video in terms of clearness, resolution, brightness, and color; the
consistency of objects or humans and the smoothness of motion or movements; the degree of dynamic changes;
the alignment between the text prompt and the video content; the consistency of the video content with the
common-sense and factual knowledge. For each dimension, output a float number from 1.0 to 4.0, the higher
the number is, the better the video performs in that sub-score, the lowest 1.0 means Bad, the highest 4.0
means Perfect/Real (the video is like a real video). Here is an output example: 3.2 2.7 4.0 2.3 1.8.
For this video, the text prompt is "a red fox running through a snowy forest at dawn", all the frames of
video are as follows: a cat sitting on a sofa; a dog playing in the park; two people walking on the beach at
sunset; a car driving down a city street at night; an astronaut riding a horse on the moon, cinematic.
"""


def write_llama_tokenizer(folder: str | os.PathLike[str]) -> Path:
    """A Llama/Mistral-style tokenizer folder (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
    added_tokens.json) with Idefics2's special tokens at their real ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])

    # Learn merges on normalised English text; the trainer's own ids are discarded below.
    learner = Tokenizer(BPE(unk_token="<unk>"))
    learner.normalizer = normalizer
    trainer = BpeTrainer(vocab_size=800, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    learner.train_from_iterator([line for line in _CORPUS.splitlines() if line], trainer=trainer)
    learnt = json.loads(learner.to_str())["model"]

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"<0x{byte:02X}>": 3 + byte for byte in range(256)})
    for token, _ in sorted(learnt["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    filler = 0
    while len(vocab) < BASE_VOCAB_SIZE:  # unreachable pieces: BPE only emits tokens built by merges
        vocab.setdefault(f"<unused{filler}>", len(vocab))
        filler += 1
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learnt["merges"]]

    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizer
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in SPECIAL_TOKENS])
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in IMAGE_TOKENS])
    if [tokenizer.token_to_id(token) for token in IMAGE_TOKENS] != [32000, 32001, 32002]:
        raise AssertionError("the Idefics2 image tokens must get ids 32000-32002")
    tokenizer.save(str(folder / "tokenizer.json"))

    def added(token: str) -> dict[str, Any]:
        return {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}  # fmt: skip

    ids = {**{token: index for index, token in enumerate(SPECIAL_TOKENS)}, **dict(zip(IMAGE_TOKENS, (32000, 32001, 32002), strict=True))}
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_bos_token": True,
                "add_eos_token": False,
                "added_tokens_decoder": {str(index): added(token) for token, index in ids.items()},
                "additional_special_tokens": list(IMAGE_TOKENS),
                "bos_token": "<s>",
                "clean_up_tokenization_spaces": False,
                "do_image_splitting": False,
                "eos_token": "</s>",
                "legacy": False,
                "model_max_length": 1000000000000000019884624838656,
                "pad_token": "<unk>",
                "padding_side": "right",
                "processor_class": "Idefics2Processor",
                "sp_model_kwargs": {},
                "spaces_between_special_tokens": False,
                "tokenizer_class": "LlamaTokenizer",
                "unk_token": "<unk>",
                "use_default_system_prompt": True,
            },
            indent=2,
        )
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "additional_special_tokens": [added(token) for token in IMAGE_TOKENS],
                "bos_token": added("<s>"), "eos_token": added("</s>"), "pad_token": added("<unk>"),
                "unk_token": added("<unk>"),
            },
            indent=2,
        )
    )  # fmt: skip
    (folder / "added_tokens.json").write_text(json.dumps({token: ids[token] for token in sorted(IMAGE_TOKENS)}))
    return folder


def write_videoscore_checkpoint(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    sizes: dict[str, dict[str, int]] | None = None,
    num_shards: int = 4,
) -> Path:
    """Write a VideoScore model folder (tiny by default) in the official layout; returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = videoscore_config(sizes)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (folder / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}, indent=2)
    )
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    (folder / "processor_config.json").write_text(json.dumps(PROCESSOR_CONFIG, indent=2))
    write_llama_tokenizer(folder)

    state_dict = _random_state_dict(config, seed)
    keys = sorted(state_dict)
    per_shard = -(-len(keys) // num_shards)
    weight_map = {}
    for shard in range(num_shards):
        name = f"model-{shard + 1:05d}-of-{num_shards:05d}.safetensors"
        chunk = {key: state_dict[key] for key in keys[shard * per_shard : (shard + 1) * per_shard]}
        save_file(chunk, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, name))
    total = sum(tensor.numel() * tensor.element_size() for tensor in state_dict.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2)
    )
    return folder


def tiny_videoscore(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("videoscore", **options)`` on the tiny VideoScore folder."""
    return {"weights": str(write_videoscore_checkpoint(Path(folder) / "VideoScore"))}
