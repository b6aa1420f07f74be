"""Tiny random Tag2Text checkpoints in the layout of ``tag2text_swin_14m.pth``, with a small BERT-style
vocabulary and a tag list in the format of VBench's ``tag_class.py``.

The checkpoint is ``torch.save({"model": state_dict})`` with every official key, the buffers the official
``state_dict()`` carries included (``relative_position_index``, ``attn_mask`` of shifted blocks,
``position_ids``) and the tied tensors under each of their names. Sizes are free except what VBench's
code fixes (384 px, tag threshold); the parity test uses ``hidden=768`` (VBench hard-codes it) and the real
3429 tags.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["TINY_TAGS", "solid_frames", "tiny_scene", "write_tag2text_checkpoint", "write_tag_list", "write_tiny_vocab"]

# Scene words among the tags, so captions and tags can be read; the rest are filler.
TINY_TAGS = (
    "alley", "beach", "forest", "mountain", "snow", "city", "street", "river", "sky", "tower",
    "kitchen", "bridge", "field", "garden", "lake", "ocean", "park", "room", "road", "sunset",
    "water", "tree", "house", "castle",
)
_WORDS = """a picture of the and in on with at is are it this that there near over under by man woman dog cat
car boat bird people group sitting standing walking running alley beach forest mountain snow city street
river sky tower kitchen bridge field garden lake ocean park room road sunset water tree house castle blue
red green white black small large old new night day""".split()
_PIECES = ["##s", "##es", "##ed", "##ing", "##ly", "##er", "##y", "##a", "##e", "##n"]
_PUNCTUATION = list(".,!?'-|")


def solid_frames(count: int, size: int = 384) -> np.ndarray:
    """uint8 ``[count, size, size, 3]`` frames of distinct solid colours: random tiny weights blur textures
    of similar statistics into near-identical features, while colours keep frames (tags, captions) apart."""
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255], [0, 255, 0], [128, 128, 0], [0, 128, 128], [64, 0, 128]])
    if count > len(colours):
        raise ValueError(f"solid_frames has {len(colours)} colours, asked for {count}")
    return np.ascontiguousarray(np.broadcast_to(colours[:count, None, None, :].astype(np.uint8), (count, size, size, 3)))


def write_tiny_vocab(folder: str | os.PathLike[str]) -> Path:
    """A bert-base-uncased-style tokenizer folder with a small vocabulary (specials, punctuation including
    Tag2Text's "|" separator, words, "##" pieces)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_PUNCTUATION, *dict.fromkeys(_WORDS), *_PIECES]
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return folder


def write_tag_list(path: str | os.PathLike[str], names: Sequence[str] = TINY_TAGS) -> Path:
    """A tag list in the format of VBench's ``tag_class.py`` (``tra_array = [...]`` then ``np.array``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(repr(name) for name in names)
    path.write_text(f"import numpy as np\n\n\ntra_array = [{body}]\n\n\ntra_array = np.array(tra_array)\n")
    return path


def write_tag2text_checkpoint(
    path: str | os.PathLike[str],
    *,
    vocab: int,
    classes: int = len(TINY_TAGS),
    hidden: int = 48,
    intermediate: int = 32,
    swin_dim: int = 8,
    swin_depths: Sequence[int] = (2, 1, 1, 1),
    swin_heads: Sequence[int] = (1, 2, 2, 4),
    text_layers: int = 2,
    tag_layers: int = 1,
    positions: int = 64,
    eos_id: int | None = None,
    tag_bias: float = 0.0,
    seed: int = 0,
) -> Path:
    """A random Tag2Text (``vocab`` rows: the tokenizer's length with [DEC] and [ENC]) saved in the official
    layout. Weights are drawn at a scale that gives tags on both sides of the threshold (``tag_bias`` shifts
    every tag logit: negative for few tags among many); ``eos_id`` gets a raised output bias so that beams
    end at various lengths."""
    from rewardkit.rewards.tag2text import Tag2Text

    torch.manual_seed(seed)
    model = Tag2Text(
        swin_dim=swin_dim,
        swin_depths=swin_depths,
        swin_heads=swin_heads,
        window=12,
        hidden=hidden,
        intermediate=intermediate,
        vocab=vocab,
        positions=positions,
        text_layers=text_layers,
        decoder_layers=text_layers,
        tag_layers=tag_layers,
        classes=classes,
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("LayerNorm.weight") or name.endswith("norm.weight") or ".norm1." in name or ".norm2." in name:
                parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
            elif name.endswith("fc.b"):
                parameter.copy_(0.5 * torch.randn_like(parameter))
            elif parameter.dim() == 1:
                parameter.copy_(0.02 * torch.randn_like(parameter))
            else:
                parameter.copy_(torch.randn_like(parameter) / parameter.shape[-1] ** 0.5)
        model.fc.b += tag_bias
        if eos_id is not None:
            model.text_decoder.cls.predictions.bias[eos_id] += 3.0
    state_dict: dict[str, Any] = {key: value.clone() for key, value in model.state_dict().items()}
    for name, buffer in model.named_buffers():  # the official state_dict() carries these (persistent there)
        state_dict[name] = buffer.clone()
    for prefix in ("text_decoder.bert", "tag_encoder"):
        state_dict[f"{prefix}.embeddings.position_ids"] = torch.arange(positions).expand(1, -1).clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state_dict}, path)
    return path


def tiny_scene(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``create_reward("scene", **options)`` on a tiny random Tag2Text, its vocabulary and tag list."""
    from rewardkit.rewards.tag2text import build_tokenizer

    folder = Path(folder)
    vocab = write_tiny_vocab(folder / "tokenizer")
    tokenizer = build_tokenizer(vocab)
    model = write_tag2text_checkpoint(folder / "tag2text_swin_14m.pth", vocab=len(tokenizer), eos_id=tokenizer.sep_token_id)
    tags = write_tag_list(folder / "tag_class.py")
    return {"weights": {"model": str(model), "tokenizer": str(vocab), "tags": str(tags)}}
