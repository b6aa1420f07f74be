"""A tiny random GRiT in the layout of ``grit_b_densecap_objectdet.pth`` (VBench's object_class,
multiple_objects, color and spatial_relationship model) and the bert-base-uncased-style tokenizer beside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["tiny_grit", "tiny_grit_dimension", "write_grit_checkpoint"]


def _tiny_config() -> Any:
    from rewardkit.rewards.grit import GritConfig

    # Block 0 windowed (2 x 2 windows), block 1 global (relative positions for a 128-px image, resized for
    # others); 2 heads of 32; a 64-channel pyramid (GroupNorm 32 needs 2 channels a group on 1 x 1 maps); one CenterNet conv; the full 30522-token vocabulary.
    return GritConfig(
        dim=64, depth=2, heads=2, patch=16, window=2, window_blocks=(0,), image_size=128, pretrain_grid=4, mlp=128,
        channels=64, centernet_convs=1, fc=64, text_hidden=64, text_layers=2, text_heads=1, text_ffn=128, text_positions=64,
    )




def write_grit_checkpoint(
    path: str | os.PathLike[str], *, seed: int = 0, word: str | None = None, caption: str | None = None, vocab: Path | None = None,
    end_bias: float = 7.2,
) -> Path:
    """A random tiny GRiT saved as detectron2 saves ``grit_b_densecap_objectdet.pth``: ``torch.save({"model":
    state_dict, "iteration": ...})`` with the official key names. Biases make detections certain: the
    proposal heatmap's sigmoid is ~0.95 and the cascade's foreground probability ~0.98, so boxes pass
    GRiT's 0.5 threshold. With ``word`` (a token of the tokenizer in ``vocab``) the output bias makes every
    description that word (its bias wins the first step; [SEP] wins the next, as GRiT never repeats the
    last token), so the dimensions' rules can be checked by hand; without it the descriptions are random
    tokens, ended early by ``end_bias`` on [SEP]. With ``caption`` too (words of the tokenizer), the text
    decoder is instead built to name every box ``word`` and caption it ``caption`` (``_chain_decoder``)."""
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
        ids = {token: index for index, token in enumerate((Path(vocab) / "vocab.txt").read_text(encoding="utf-8").splitlines())}
        if caption is None:
            bias[ids[word]], bias[END] = 60.0, 40.0
        else:
            state.update(_chain_decoder(state, [ids[word]], [ids[token] for token in caption.split()]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "iteration": 180000}, path)
    return path


def _chain_decoder(state: dict[str, torch.Tensor], objects: list[int], caption: list[int]) -> dict[str, torch.Tensor]:
    """Text-decoder weights under which the next token depends only on the last one: every layer's output
    projections are zero, so the last hidden state is the embedding layer's normalised word embedding
    (position embeddings zero), and a token's logits are it times the (tied) word embeddings. Token w's
    embedding is ``4 ** depth(w) * (u_w + sum of u_p)`` over the tokens p it must follow ([CLS] -> objects ->
    [SEP], token 104 (GRiT's caption start) -> caption -> [SEP]); ``u`` are axes, depth the longest count
    of steps from a start. The last token's successor then outscores the token itself (4 times the scale,
    a smaller overlap) and its predecessors (a sixteenth of the scale or less). Every other word embedding
    is zero (logit 0)."""
    from rewardkit.rewards.grit import CAPTION_BEGIN, END, OBJECT_BEGIN

    text = "roi_heads.text_decoder.textual."
    words = torch.zeros_like(state[f"{text}embedding.words.weight"])
    successor: dict[int, int] = {}
    depth = {OBJECT_BEGIN: 0, CAPTION_BEGIN: 0}
    for sequence in ([OBJECT_BEGIN, *objects, END], [CAPTION_BEGIN, *caption, END]):
        for before, after in zip(sequence[:-1], sequence[1:], strict=True):
            if successor.get(before, after) != after or after in (OBJECT_BEGIN, CAPTION_BEGIN):
                raise ValueError(f"token {before} would need two successors; choose descriptions that agree after a shared word")
            successor[before] = after
            depth[after] = max(depth.get(after, 0), depth[before] + 1)
    axes = {token: axis for axis, token in enumerate(depth)}
    if len(axes) > words.shape[1]:
        raise ValueError(f"{len(axes)} distinct tokens need as many embedding dimensions; the model has {words.shape[1]}")
    for token, axis in axes.items():
        words[token, axis] = 4.0 ** depth[token]
    for before, after in successor.items():
        words[after, axes[before]] = 4.0 ** depth[after]
    updated = {f"{text}embedding.words.weight": words, f"{text}output.weight": words}
    updated[f"{text}embedding.positions.weight"] = torch.zeros_like(state[f"{text}embedding.positions.weight"])
    updated[f"{text}embedding.layer_norm.weight"] = torch.ones_like(state[f"{text}embedding.layer_norm.weight"])
    updated[f"{text}embedding.layer_norm.bias"] = torch.zeros_like(state[f"{text}embedding.layer_norm.bias"])
    updated[f"{text}output.bias"] = torch.zeros_like(state[f"{text}output.bias"])
    for key, value in state.items():
        if key.startswith(f"{text}transformer.") and ".output.dense." in key:
            updated[key] = torch.zeros_like(value)
        elif key.startswith(f"{text}transformer.") and ".LayerNorm." in key:
            updated[key] = torch.ones_like(value) if key.endswith("weight") else torch.zeros_like(value)
    return updated


def tiny_grit(folder: str | os.PathLike[str], word: str | None = "car", caption: str | None = None) -> dict[str, Any]:
    """``create_reward(<a GRiT dimension>, **options)`` on a tiny GRiT that names every box ``word`` (and,
    with ``caption``, captions every box so)."""
    from rewardkit.testing.imagereward import write_bert_vocab

    folder = Path(folder)
    vocab = write_bert_vocab(folder / "bert-base-uncased")
    checkpoint = write_grit_checkpoint(folder / "grit_b_densecap_objectdet.pth", word=word, caption=caption, vocab=vocab)
    return {"weights": {"model": str(checkpoint), "tokenizer": str(vocab)}}


def tiny_grit_dimension(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The fixture of the four GRiT dimensions: every box is named "car" and captioned "red car"."""
    return tiny_grit(folder, word="car", caption="red car")
