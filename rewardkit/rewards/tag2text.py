"""Tag2Text (Swin-B image tagger and tag-guided captioner) and VBench's ``scene`` dimension on it.

Huang et al., "Tag2Text: Guiding Vision-Language Model via Image Tagging" (ICLR 2024, arXiv:2303.05657),
https://github.com/xinyu1205/recognize-anything; VBench (Huang et al., CVPR 2024, arXiv:2311.17982),
https://github.com/Vchitect/VBench, ``vbench/scene.py`` and its copy of the model in
``vbench/third_party/tag2Text`` (``Tag2Text_Caption``, ``med.py``, ``swin_transformer.py``), as in the
vbench 0.1.5 wheel run with its pinned transformers 4.33.2.

The model, with the official parameter names so ``tag2text_swin_14m.pth`` (``{"model": state_dict}``) loads
strictly (the official loader uses ``strict=False``):

- ``visual_encoder``: Swin-B at 384 px (patch 4, window 12, embed 128, depths 2-2-18-2, heads 4-8-16-32);
  its output is the token mean followed by the 144 final tokens, ``[N, 145, 1024]``.
- tagging: ``label_embed`` (3429 tag queries) through ``vision_multi`` (2 BERT layers, 4 heads, cross-attention
  only, no embeddings) to the image tokens, then ``fc`` (one weight row per tag, ``(W * x).sum(-1) + b``);
  a tag is on when ``sigmoid(logit) > 0.7``, except six indices VBench always clears.
- ``tag_encoder``: BERT (12 layers, 12 heads) over "tag1 | tag2 | ..." (``[ENC]`` in place of ``[CLS]``,
  padded to 40 tokens) with cross-attention to the image tokens. Its first layers share the cross-attention
  and feed-forward weights of ``vision_multi`` (the official ``tie_encoder_decoder_weights``); the shared
  tensors appear under both names in the checkpoint, as they do in the official ``state_dict``.
- ``text_decoder``: BERT LM head model (12 layers, causal self-attention, cross-attention to the tag
  encoder's output; output projection tied to the word embeddings) that continues the prompt
  ``[DEC] a picture of`` by beam search (3 beams, at most 30 tokens, at least 10, as ``model.generate``).
  The caption is the decoded text (special tokens skipped) minus its first ``len("a picture of ")`` characters.

Sizes other than the heads (12 for the text models, 4 for ``vision_multi``, Swin's from its tables) are
read from the checkpoint, so the same loader serves the real file and tiny test files. The checkpoint's
``relative_position_index``, ``attn_mask`` and ``position_ids`` buffers are dropped when present (the
official loader deletes the first two; all three are recomputed here).

Beam search follows transformers 4.33.2 (VBench's pin): log-softmax scores, the first step from beam 0 only,
the top ``2 * beams`` candidates per step, an end token counted only among the top ``beams``, hypotheses
scored ``sum logprob / length`` with the prompt counted in the length, the "done" heuristic of
``early_stopping=False``, and the best hypothesis with an end token appended when it fits.

VBench quirk kept for parity: transformers >= 4.27 repeats the decoder's ``encoder_hidden_states`` once
more per beam inside ``generate``, and VBench's ``med.py`` then keeps the first ``frames * beams`` rows of
the repeated keys. The caption of frame ``f`` (beam ``b``) is therefore conditioned on the tag encoding of
frame ``(f * beams + b) // beams**2``, that is frame ``f // 3`` with 3 beams: of VBench's 16 frames, the
captions judged are those of frames 0-5 (each three times, frame 5 once). ``caption_source_frames`` gives
the mapping; the tags themselves are per frame.

``scene`` (``vbench/scene.py``): 16 frames at ``get_frame_indices(16, T, "middle")``
(``VBenchMiddleFrames``), each resized to 384 x 384 (VBench asks decord to decode at that size; here the
decoded frame is resized with PIL's bilinear filter, which is what VBench's own ``Resize((384, 384))`` does
to frames of other sizes and a no-op for 384 x 384 video), ``ToTensor`` and ImageNet normalisation; the
video's score is the fraction of its 16 captions that contain every word of the scene label as a
substring (``vbench_rules.scene_frames``). VBench pools frames over videos; every video has 16 frames, so
that equals the mean of these scores.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.rewards.imagereward import IMAGEREWARD_WEIGHTS, TOKENIZER_REPO
from rewardkit.rewards.vbench_rules import scene_frames
from rewardkit.rewards.viclip import VBenchMiddleFrames
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.weights import (
    MissingWeightsError,
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

__all__ = [
    "TAG2TEXT_WEIGHTS",
    "SwinTransformer",
    "Tag2Text",
    "Tag2TextCaptioner",
    "Tag2TextScene",
    "beam_search",
    "caption_source_frames",
    "load_tag2text",
    "read_tag_list",
]

VBENCH_COMMIT = "45e79ec14e69a2187202c675d2dbce1a71843d53"
TAG2TEXT_WEIGHTS = {
    # VBench downloads it from the Space xinyu1205/recognize-anything; the model repo holds the same file.
    # Checked against the Hub's LFS hash (no published sha256; it could not be computed here, offline).
    "model": WeightFile("xinyu1205/recognize_anything_model", "tag2text_swin_14m.pth", 0, "Apache-2.0"),
    "tokenizer": IMAGEREWARD_WEIGHTS["tokenizer"],
    # The 3429 tag names (``tra_array`` of VBench's tag_class.py, read without running it); sha256 of the file
    # in the vbench 0.1.5 wheel (whose VBench_full_info.json equals the one at this commit).
    "tags": WeightFile(
        "Vchitect/VBench",
        "tag_class.py",
        39_420,
        "Apache-2.0",
        sha256="8e33d5653fc4f5f1792bad82e64dcbf4a004dacf633b8e8d6a811ae07b7a73bf",
        url=f"https://raw.githubusercontent.com/Vchitect/VBench/{VBENCH_COMMIT}/vbench/third_party/tag2Text/tag_class.py",
        holds_weights=False,
    ),
}
IMAGE_SIZE = 384
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEXT_HEADS = 12  # med_config.json
TAG_HEADS = 4  # q2l_config.json
THRESHOLD = 0.7
DELETED_TAGS = (127, 3351, 3265, 3338, 3355, 3359)  # tag2text.py delete_tag_index
PROMPT = "a picture of "
TAG_TOKENS = 40
NUM_BEAMS = 3
MAX_LENGTH = 30
MIN_LENGTH = 10
SCENE_FRAMES = 16
UNUSED_BUFFERS = ("relative_position_index", "attn_mask", "position_ids")


# ------------------------------------------------------------------------------------------------ Swin


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def _window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


class WindowAttention(nn.Module):
    """Window self-attention with a relative position bias (Swin's ``WindowAttention``)."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", relative[..., 0] * (2 * window - 1) + relative[..., 1], persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(tokens, tokens, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            count = mask.shape[0]
            attn = (attn.view(windows // count, count, self.heads, tokens, tokens) + mask[None, :, None]).view(-1, self.heads, tokens, tokens)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, channels))


class SwinMlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """One (shifted) window block; windows shrink to the feature map and stop shifting where it is smaller."""

    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim)
        mask = None
        if shift:
            regions = torch.zeros(1, resolution, resolution, 1)
            spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for count, (rows, cols) in enumerate((r, c) for r in spans for c in spans):
                regions[:, rows, cols, :] = count
            labels = _window_partition(regions, window).squeeze(-1)
            mask = (labels.unsqueeze(1) - labels.unsqueeze(2)).ne(0).float() * -100.0
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        side = self.resolution
        h = self.norm1(x).view(batch, side, side, channels)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        h = self.attn(_window_partition(h, self.window), self.attn_mask)
        h = _window_reverse(h, self.window, side, side)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(batch, tokens, channels)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        x = x.view(batch, self.resolution, self.resolution, channels)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(batch, -1, 4 * channels)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, resolution: int, depth: int, heads: int, window: int, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, heads, window, 0 if index % 2 == 0 else window // 2) for index in range(depth)
        )
        self.downsample = PatchMerging(dim, resolution) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTransformer(nn.Module):
    """The Swin backbone of ``swin_transformer.py`` (no absolute position embedding, patch norm on);
    ``[N, 3, S, S] -> [N, 1 + (S/32)^2, 8 * dim]``: the mean token first, then the last stage's tokens."""

    def __init__(self, *, image_size: int, dim: int, depths: Sequence[int], heads: Sequence[int], window: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.patch_embed = PatchEmbed(dim)
        grid = image_size // 4
        self.layers = nn.ModuleList(
            SwinStage(dim * 2**index, grid // 2**index, depth, heads[index], window, index < len(depths) - 1)
            for index, depth in enumerate(depths)
        )
        self.norm = nn.LayerNorm(dim * 2 ** (len(depths) - 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"Tag2Text's Swin takes {self.image_size}x{self.image_size} images, got {tuple(images.shape[-2:])}")
        x = self.patch_embed(images)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)


# ------------------------------------------------------------------------------------------------ BERT (med.py)


def _extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """med.py ``get_extended_attention_mask``: 1 -> 0, 0 -> -10000, broadcast over heads."""
    return (1.0 - mask.to(dtype)) * -10000.0


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, key_width: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(key_width, hidden)
        self.value = nn.Linear(key_width, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:2], self.heads, -1).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context
        q, k, v = self._split(self.query(x)), self._split(self.key(source)), self._split(self.value(source))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores + mask
        out = torch.matmul(scores.softmax(dim=-1), v).permute(0, 2, 1, 3)
        return out.reshape(*out.shape[:2], -1)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, key_width: int, eps: float) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden, heads, key_width)
        self.output = BertSelfOutput(hidden, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(x, mask, context), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class BertOutput(BertSelfOutput):
    def __init__(self, intermediate: int, hidden: int, eps: float) -> None:
        super().__init__(hidden, eps)
        self.dense = nn.Linear(intermediate, hidden)


class BertLayer(nn.Module):
    """med.py ``BertLayer``: self-attention (absent in ``vision_multi``'s "mlr" layers), cross-attention to
    ``context``, feed-forward."""

    def __init__(self, hidden: int, intermediate: int, heads: int, context_width: int, eps: float, self_attention: bool) -> None:
        super().__init__()
        self.attention = BertAttention(hidden, heads, hidden, eps) if self_attention else None
        self.crossattention = BertAttention(hidden, heads, context_width, eps)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertOutput(intermediate, hidden, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            x = self.attention(x, mask)
        x = self.crossattention(x, None, context)  # the image / tag tokens are never masked
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, layers: list[BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask, context)
        return x


class BertEmbeddings(nn.Module):
    """Word plus absolute position embeddings, LayerNorm (med.py has no token-type embeddings)."""

    def __init__(self, vocab: int, hidden: int, positions: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)[None])


class BertModel(nn.Module):
    """med.py ``BertModel`` without a pooler; ``embeddings`` is None for ``vision_multi`` (queries come in as
    embeddings). ``causal`` makes the self-attention mask a decoder's."""

    def __init__(self, embeddings: BertEmbeddings | None, layers: list[BertLayer]) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.encoder = BertEncoder(layers)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        if self.embeddings is None:
            return self.encoder(x, None, context)
        hidden = self.embeddings(x)
        mask = torch.ones(x.shape, device=x.device) if attention_mask is None else attention_mask
        mask = mask[:, None, :]
        if causal:
            positions = torch.arange(x.shape[1], device=x.device)
            mask = mask * (positions[None, :] <= positions[:, None]).to(mask.dtype)[None]
        return self.encoder(hidden, _extended_mask(mask[:, None], hidden.dtype), context)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(hidden, eps)
        self.decoder = nn.Linear(hidden, vocab, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.decoder.bias = self.bias  # one tensor under two names, as in med.py

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(hidden, vocab, eps)


class BertLMHeadModel(nn.Module):
    """The caption decoder; its output projection is its word embedding matrix (tied)."""

    def __init__(self, bert: BertModel, vocab: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.bert = bert
        self.cls = BertOnlyMLMHead(hidden, vocab, eps)
        self.cls.predictions.decoder.weight = bert.embeddings.word_embeddings.weight

    def next_token_logits(self, ids: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, vocab]`` of the token after ``ids`` (the whole prefix recomputed, as VBench's
        ``prepare_inputs_for_generation`` never passes the cache on)."""
        hidden = self.bert(ids, context, causal=True)
        return self.cls.predictions(hidden[:, -1])


class GroupWiseLinear(nn.Module):
    def __init__(self, classes: int, hidden: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(1, classes, hidden))
        self.b = nn.Parameter(torch.zeros(1, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.W * x).sum(-1) + self.b


# ------------------------------------------------------------------------------------------------ Tag2Text


class Tag2Text(nn.Module):
    """Tag2Text_Caption's parameters and forward passes (tagging and the tag-conditioned decoder)."""

    def __init__(
        self,
        *,
        swin_dim: int,
        swin_depths: Sequence[int],
        swin_heads: Sequence[int],
        window: int,
        hidden: int,
        intermediate: int,
        vocab: int,
        positions: int,
        text_layers: int,
        decoder_layers: int,
        tag_layers: int,
        classes: int,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if tag_layers > text_layers:
            raise WeightsMismatchError(f"vision_multi has {tag_layers} layers but tag_encoder only {text_layers}: they share weights layer by layer")
        vision_width = swin_dim * 2 ** (len(swin_depths) - 1)
        self.visual_encoder = SwinTransformer(image_size=IMAGE_SIZE, dim=swin_dim, depths=swin_depths, heads=swin_heads, window=window)

        def layers(count: int, heads: int, context: int, self_attention: bool) -> list[BertLayer]:
            return [BertLayer(hidden, intermediate, heads, context, eps, self_attention) for _ in range(count)]

        decoder = BertModel(BertEmbeddings(vocab, hidden, positions, eps), layers(decoder_layers, TEXT_HEADS, hidden, True))
        self.text_decoder = BertLMHeadModel(decoder, vocab, hidden, eps)
        self.tag_encoder = BertModel(BertEmbeddings(vocab, hidden, positions, eps), layers(text_layers, TEXT_HEADS, vision_width, True))
        self.vision_multi = BertModel(None, layers(tag_layers, TAG_HEADS, vision_width, False))
        self.label_embed = nn.Embedding(classes, hidden)
        self.fc = GroupWiseLinear(classes, hidden)
        for shared, layer in zip(self.vision_multi.encoder.layer, self.tag_encoder.encoder.layer, strict=False):
            for name in ("crossattention", "intermediate", "output"):
                _share_parameters(getattr(shared, name), getattr(layer, name))

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual_encoder(images)

    def tag_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``[N, classes]`` tag logits (before the sigmoid)."""
        queries = self.label_embed.weight.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)
        return self.fc(self.vision_multi(queries, image_embeds))

    def encode_tags(self, ids: torch.Tensor, mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        return self.tag_encoder(ids, image_embeds, attention_mask=mask)


def _share_parameters(source: nn.Module, target: nn.Module) -> None:
    """Make every parameter of ``target`` the same tensor as ``source``'s (official ``tie_encoder_decoder_weights``)."""
    for name, parameter in source.named_parameters():
        owner, _, leaf = name.rpartition(".")
        setattr(target.get_submodule(owner) if owner else target, leaf, parameter)


def caption_source_frames(frames: int, beams: int = NUM_BEAMS) -> list[list[int]]:
    """For each frame, the frame whose tag encoding each of its beams is decoded against in VBench 0.1.5 (see
    the module docstring): ``(f * beams + b) // beams**2``."""
    return [[(frame * beams + beam) // beams**2 for beam in range(beams)] for frame in range(frames)]


class _Hypotheses:
    """transformers 4.33.2 ``BeamHypotheses`` with ``length_penalty=1`` and ``early_stopping=False``."""

    def __init__(self, beams: int) -> None:
        self.beams = beams
        self.kept: list[tuple[float, torch.Tensor]] = []
        self.worst = 1e9

    def add(self, tokens: torch.Tensor, sum_logprobs: float) -> None:
        score = sum_logprobs / tokens.shape[-1]
        if len(self.kept) < self.beams or score > self.worst:
            self.kept.append((score, tokens))
            if len(self.kept) > self.beams:
                ranked = sorted((s, index) for index, (s, _) in enumerate(self.kept))
                del self.kept[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def done(self, best_sum_logprobs: float, length: int) -> bool:
        return len(self.kept) >= self.beams and self.worst >= best_sum_logprobs / length

    def best(self) -> torch.Tensor:
        return sorted(self.kept, key=lambda item: item[0])[-1][1]


def beam_search(
    next_logits: Callable[[torch.Tensor], torch.Tensor],
    prompt: torch.Tensor,
    *,
    beams: int,
    max_length: int,
    min_length: int,
    eos: int,
    pad: int,
) -> torch.Tensor:
    """transformers 4.33.2 ``generate(num_beams=beams, max_length, min_length, eos, pad)`` for a decoder
    whose next-token logits ``[B * beams, V]`` of prefixes ``[B * beams, L]`` ``next_logits`` returns;
    ``prompt`` is ``[B, L0]``. Returns the best sequences ``[B, L]`` (prompt included, pad-filled, an end
    token appended when it fits)."""
    batch = prompt.shape[0]
    ids = prompt.repeat_interleave(beams, dim=0)
    scores = torch.zeros(batch, beams, device=ids.device)
    scores[:, 1:] = -1e9
    scores = scores.view(-1)
    hypotheses = [_Hypotheses(beams) for _ in range(batch)]
    done = [False] * batch
    while True:
        logprobs = F.log_softmax(next_logits(ids), dim=-1)
        if ids.shape[1] < min_length:
            logprobs[:, eos] = -float("inf")
        vocab = logprobs.shape[-1]
        candidates = (logprobs + scores[:, None]).view(batch, beams * vocab)
        top_scores, top = torch.topk(candidates, 2 * beams, dim=1, largest=True, sorted=True)
        sources, tokens = torch.div(top, vocab, rounding_mode="floor"), top % vocab
        next_scores = torch.zeros(batch, beams, dtype=top_scores.dtype, device=ids.device)
        next_tokens = torch.zeros(batch, beams, dtype=tokens.dtype, device=ids.device)
        next_rows = torch.zeros(batch, beams, dtype=sources.dtype, device=ids.device)
        for item in range(batch):
            if done[item]:
                next_tokens[item] = pad
                continue
            kept = 0
            for rank in range(2 * beams):
                token, row = int(tokens[item, rank]), item * beams + int(sources[item, rank])
                if token == eos:
                    if rank < beams:
                        hypotheses[item].add(ids[row].clone(), top_scores[item, rank].item())
                else:
                    next_scores[item, kept], next_tokens[item, kept], next_rows[item, kept] = top_scores[item, rank], token, row
                    kept += 1
                if kept == beams:
                    break
            done[item] = hypotheses[item].done(top_scores[item].max().item(), ids.shape[1] + 1)
        ids = torch.cat([ids[next_rows.view(-1)], next_tokens.view(-1, 1)], dim=-1)
        scores = next_scores.view(-1)
        if all(done) or ids.shape[1] >= max_length:
            break
    for item in range(batch):
        if not done[item]:
            for beam in range(beams):
                hypotheses[item].add(ids[item * beams + beam], scores[item * beams + beam].item())
    best = [hypotheses[item].best() for item in range(batch)]
    width = min(max(len(tokens) for tokens in best) + 1, max_length)
    out = torch.full((batch, width), pad, dtype=ids.dtype, device=ids.device)
    for item, tokens in enumerate(best):
        out[item, : len(tokens)] = tokens
        if len(tokens) < width:
            out[item, len(tokens)] = eos
    return out


class Tag2TextCaptioner(nn.Module):
    """Tag2Text with its tokenizer and tag names: ``generate`` is VBench's ``model.generate(images,
    tag_input=None, return_tag_predict=True)`` with its defaults (3 beams, 10-30 tokens)."""

    def __init__(self, model: Tag2Text, tokenizer: Any, tag_names: Sequence[str]) -> None:
        super().__init__()
        classes = model.label_embed.num_embeddings
        if len(tag_names) != classes:
            raise WeightsMismatchError(f"the tag list has {len(tag_names)} names but the checkpoint {classes} tag queries")
        rows = model.text_decoder.bert.embeddings.word_embeddings.num_embeddings
        if len(tokenizer) != rows:
            raise WeightsMismatchError(
                f"the tokenizer has {len(tokenizer)} tokens (with [DEC] and [ENC]) but the checkpoint's text embeddings "
                f"{rows} rows: use bert-base-uncased's vocab.txt ({TOKENIZER_REPO}) with tag2text_swin_14m.pth"
            )
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tag_names = np.asarray(tag_names)
        self.deleted = [index for index in DELETED_TAGS if index < classes]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.model.label_embed.weight.device

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, 3, 384, 384]`` -> VBench's ``ToTensor`` + ImageNet ``Normalize``."""
        pixels = frames.to(self.device).float().div(255)
        return ((pixels - self.mean) / self.std).to(self.model.label_embed.weight.dtype)

    def tags(self, logits: torch.Tensor) -> list[str]:
        """"tag | tag | ..." per image: tags whose sigmoid exceeds 0.7, in tag-list order, minus VBench's six."""
        chosen = (torch.sigmoid(logits) > THRESHOLD).cpu().numpy()
        chosen[:, self.deleted] = False
        return [" | ".join(self.tag_names[np.flatnonzero(row)]) for row in chosen]

    @torch.no_grad()
    def generate(self, frames: torch.Tensor) -> tuple[list[str], list[str], torch.Tensor]:
        """Captions, tags and tag logits ``[N, classes]`` of one video's frames (uint8 ``[N, 3, 384, 384]``,
        all in one call: the caption-to-frame mapping of ``caption_source_frames`` depends on N)."""
        model, tokenizer = self.model, self.tokenizer
        embeds = model.image_embeds(self.normalize(frames))
        logits = model.tag_logits(embeds)
        tags = self.tags(logits)
        tokens = tokenizer(tags, padding="max_length", truncation=True, max_length=TAG_TOKENS, return_tensors="pt").to(self.device)
        ids = tokens.input_ids.clone()
        ids[:, 0] = tokenizer.convert_tokens_to_ids("[ENC]")
        encoded = model.encode_tags(ids, tokens.attention_mask, embeds)
        source = torch.tensor(caption_source_frames(len(frames)), device=self.device).view(-1)
        context = encoded[source]
        prompt = tokenizer([PROMPT] * len(frames), return_tensors="pt").input_ids.to(self.device)
        prompt[:, 0] = tokenizer.bos_token_id
        sequences = beam_search(
            lambda prefix: model.text_decoder.next_token_logits(prefix, context),
            prompt[:, :-1],
            beams=NUM_BEAMS,
            max_length=MAX_LENGTH,
            min_length=MIN_LENGTH,
            eos=tokenizer.sep_token_id,
            pad=tokenizer.pad_token_id,
        )
        texts = [tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=True) for row in sequences]
        return [text[len(PROMPT) :] for text in texts], tags, logits.float()


def read_tag_list(path: str | Path) -> list[str]:
    """The tag names of VBench's ``tag_class.py`` (its ``tra_array = [...]`` literal, parsed, not run)."""
    source = Path(path).read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "tra_array" for target in node.targets):
            try:
                names = ast.literal_eval(node.value)
            except ValueError:
                break
            if isinstance(names, list) and all(isinstance(name, str) for name in names):
                return names
    raise MissingWeightsError(f"{path} holds no `tra_array = [...]` list of tag names as text (VBench's tag2Text/tag_class.py)")


def build_tokenizer(folder: str | Path) -> Any:
    """bert-base-uncased from ``folder`` plus ``[DEC]`` (bos) and ``[ENC]``, as Tag2Text's ``init_tokenizer``."""
    from transformers import BertTokenizer

    folder = Path(folder)
    if not (folder / "vocab.txt").is_file():
        raise MissingWeightsError(f"no vocab.txt in {folder}: reward 'scene' needs bert-base-uncased's tokenizer files from {TOKENIZER_REPO}")
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def load_tag2text(path: str | Path) -> Tag2Text:
    """A Tag2Text built to the shapes of ``path`` (``{"model": state_dict}``) and loaded strictly."""
    state_dict = load_state_dict(path)
    if isinstance(state_dict.get("model"), Mapping):
        state_dict = state_dict["model"]
    needed = ("visual_encoder.patch_embed.proj.weight", "label_embed.weight", "fc.W", "text_decoder.cls.predictions.bias")
    if not all(key in state_dict for key in needed):
        raise WeightsMismatchError(
            f"{path} is not a Tag2Text checkpoint (expected {{'model': state dict}} with visual_encoder.*, tag_encoder.*, "
            f"text_decoder.*, vision_multi.*, label_embed and fc keys, as tag2text_swin_14m.pth)"
        )
    state_dict = {key: value for key, value in state_dict.items() if key.rpartition(".")[2] not in UNUSED_BUFFERS}

    def count(prefix: str) -> int:
        depth = prefix.count(".") + 1
        return len({key.split(".")[depth] for key in state_dict if key.startswith(prefix + ".")})

    stages = count("visual_encoder.layers")
    depths = [count(f"visual_encoder.layers.{stage}.blocks") for stage in range(stages)]
    table = state_dict["visual_encoder.layers.0.blocks.0.attn.relative_position_bias_table"]
    heads = [state_dict[f"visual_encoder.layers.{stage}.blocks.0.attn.relative_position_bias_table"].shape[1] for stage in range(stages)]
    vocab, hidden = state_dict["tag_encoder.embeddings.word_embeddings.weight"].shape
    model = Tag2Text(
        swin_dim=state_dict["visual_encoder.patch_embed.proj.weight"].shape[0],
        swin_depths=depths,
        swin_heads=heads,
        window=(round(math.sqrt(table.shape[0])) + 1) // 2,
        hidden=hidden,
        intermediate=state_dict["tag_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0],
        vocab=vocab,
        positions=state_dict["tag_encoder.embeddings.position_embeddings.weight"].shape[0],
        text_layers=count("tag_encoder.encoder.layer"),
        decoder_layers=count("text_decoder.bert.encoder.layer"),
        tag_layers=count("vision_multi.encoder.layer"),
        classes=state_dict["label_embed.weight"].shape[0],
    )
    load_strict(model, state_dict, str(path))
    return model


class Tag2TextScene(VideoScorer):
    """VBench ``scene``: the fraction of 16 frames whose Tag2Text caption contains every word of the scene
    label given as the prompt (VBench's ``auxiliary_info["scene"]["scene"]``)."""

    needs_prompt = True

    def __init__(self, captioner: Tag2TextCaptioner) -> None:
        super().__init__()
        self.captioner = captioner
        self.sampler = VBenchMiddleFrames(SCENE_FRAMES)

    def captions(self, frames: torch.Tensor) -> list[str]:
        """Captions of one video's sampled frames ``[K, 3, H, W]`` (uint8 or float in [0, 1])."""
        video = as_float_videos(frames[None], keep_uint8=True)[0]
        if video.dtype != torch.uint8:
            video = (video * 255).round().clamp(0, 255).to(torch.uint8)
        if video.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            from PIL import Image

            video = torch.stack(
                [
                    torch.from_numpy(
                        np.array(Image.fromarray(frame.permute(1, 2, 0).cpu().numpy()).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
                    ).permute(2, 0, 1)
                    for frame in video
                ]
            )
        return self.captioner.generate(video)[0]

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: Any = None,
    ) -> torch.Tensor:
        labels = check_prompts(prompts, frames.shape[0], "scene", needs_prompt=True)
        scores = []
        for video, label in zip(frames, labels, strict=True):
            captions = self.captions(video)
            scores.append(scene_frames(label, captions) / len(captions))
        return torch.tensor(scores, dtype=torch.float32)


def _locate(role: str, folder: Path) -> Path:
    declared = folder / TAG2TEXT_WEIGHTS[role].filename
    if declared.is_file():
        return declared
    raise MissingWeightsError(
        f"the folder {str(folder)!r} given as reward 'scene''s {role} holds no {TAG2TEXT_WEIGHTS[role].filename} "
        f"(from {TAG2TEXT_WEIGHTS[role].source})"
    )


@register_reward(
    "scene",
    modality="video",
    needs_prompt=True,
    differentiable=False,
    score_range=(0.0, 1.0),
    weights=TAG2TEXT_WEIGHTS,
    description="VBench scene: Tag2Text (Swin-B) captions of 16 frames containing the scene label",
    paper="arXiv:2311.17982; Tag2Text arXiv:2303.05657",
    repository="https://github.com/Vchitect/VBench",
)
def create_scene(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> Tag2TextScene:
    """VBench's scene; ``weights`` is ``tag2text_swin_14m.pth`` or ``{"model": ..., "tokenizer": FOLDER with
    bert-base-uncased's vocab.txt, "tags": tag_class.py}``. The prompt is the scene label."""

    def build(paths: Mapping[str, Path]) -> Tag2TextScene:
        model = load_tag2text(paths["model"]).to(device=device, dtype=dtype)
        captioner = Tag2TextCaptioner(model, build_tokenizer(paths["tokenizer"].parent), read_tag_list(paths["tags"]))
        return Tag2TextScene(captioner.to(device))

    return build_with_weights("scene", weights, {}, build, locate=_locate)
