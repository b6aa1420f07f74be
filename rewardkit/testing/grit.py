"""A tiny random GRiT in the layout of ``grit_b_densecap_objectdet.pth`` (VBench's object_class,
multiple_objects, color and spatial_relationship model) and the bert-base-uncased-style tokenizer beside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["tiny_grit", "write_grit_checkpoint"]


def _tiny_config() -> Any:
    from rewardkit.rewards.grit import GritConfig

    # Block 0 windowed (2 x 2 windows), block 1 global (relative positions for a 128-px image, resized for
    # others); 2 heads of 32; a 64-channel pyramid (GroupNorm 32 needs 2 channels a group on 1 x 1 maps); one CenterNet conv; the full 30522-token vocabulary.
    return GritConfig(
        dim=64, depth=2, heads=2, patch=16, window=2, window_blocks=(0,), image_size=128, pretrain_grid=4, mlp=128,
        channels=64, centernet_convs=1, fc=64, text_hidden=64, text_layers=2, text_heads=1, text_ffn=128, text_positions=64,
    )




def write_grit_checkpoint(path: str | os.PathLike[str], *, seed: int = 0, word: str | None = None, vocab: Path | None = None, end_bias: float = 7.2) -> Path:
    """A random tiny GRiT saved as detectron2 saves ``grit_b_densecap_objectdet.pth``: ``torch.save({"model":
    state_dict, "iteration": ...})`` with the official key names. Biases make detections certain: the
    proposal heatmap's sigmoid is ~0.95 and the cascade's foreground probability ~0.98, so boxes pass
    GRiT's 0.5 threshold. With ``word`` (a token of the tokenizer in ``vocab``) the output bias makes every
    description that word (its bias wins the first step; [SEP] wins the next, as GRiT never repeats the
    last token), so the dimensions' rules can be checked by hand; without it the descriptions are random
    tokens, ended early by ``end_bias`` on [SEP]."""
    from rewardkit.rewards.grit import END, Grit

    torch.manual_seed(seed)
    model = Grit(_tiny_config())
    state = {key: value.clone() for key, value in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or "LayerNorm" in key or "layer_norm" in key:
            state[key] = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        elif value.is_floating_point():
            fan_in = value[0].numel() if value.ndim > 1 else 1
            scale = 1.0 if key.startswith("roi_heads.text_decoder.") else 0.2  # strong enough that boxes differ
            state[key] = scale * torch.randn(value.shape, generator=generator) / fan_in**0.5
    state["backbone.bottom_up.pos_embed"] = 0.02 * torch.randn(state["backbone.bottom_up.pos_embed"].shape, generator=generator)
    state["proposal_generator.centernet_head.agn_hm.bias"] = torch.tensor([3.0])
    # boxes 4 strides from their centre on every side: neighbours overlap, so NMS leaves a few per level
    state["proposal_generator.centernet_head.bbox_pred.bias"] = torch.full((4,), 4.0)
    for stage in range(3):
        state[f"roi_heads.box_predictor.{stage}.cls_score.bias"] = torch.tensor([2.0, -2.0])
    text = "roi_heads.text_decoder.textual."
    state[f"{text}output.weight"] = state[f"{text}embedding.words.weight"]
    bias = torch.zeros_like(state[f"{text}output.bias"])
    bias[END] = end_bias
    state[f"{text}output.bias"] = bias
    if word is not None:
        from rewardkit.rewards.grit import build_grit_tokenizer

        token = build_grit_tokenizer(vocab).convert_tokens_to_ids(word)
        bias[token], bias[END] = 60.0, 40.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "iteration": 180000}, path)
    return path


def tiny_grit(folder: str | os.PathLike[str], word: str | None = "car") -> dict[str, Any]:
    """``create_reward(<a GRiT dimension>, **options)`` on a tiny GRiT that names every box ``word``."""
    from rewardkit.testing.imagereward import write_bert_vocab

    folder = Path(folder)
    vocab = write_bert_vocab(folder / "bert-base-uncased")
    checkpoint = write_grit_checkpoint(folder / "grit_b_densecap_objectdet.pth", word=word, vocab=vocab)
    return {"weights": {"model": str(checkpoint), "tokenizer": str(vocab)}}
