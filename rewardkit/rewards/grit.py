"""GRiT, the Generative Region-to-text Transformer (Wu et al., "GRiT: A Generative Region-to-text Transformer
for Object Understanding", arXiv:2212.00280, https://github.com/JialianW/GRiT), as VBench runs it for its
object_class, multiple_objects, color and spatial_relationship dimensions (VBench 0.1.5,
``vbench/third_party/grit_src``, config ``GRiT_B_DenseCap_ObjectDet.yaml``, ``grit_b_densecap_objectdet.pth``).

Built here without detectron2, with the checkpoint's parameter names (``model`` of the detectron2 checkpoint,
loaded strictly):

- ``backbone``: ViTDet's ViT-B/16 (window attention of 14 in blocks 0, 1, 3, 4, 6, 7, 9, 10, decomposed
  relative positions, absolute positions resized bicubically from the 14 x 14 pretraining grid) and GRiT's
  simple feature pyramid (stride 8 by a transposed convolution, 16, 32 by max pooling; 1x1 and 3x3
  convolutions with channel LayerNorms; P6, P7 by stride-2 convolutions of P5).
- ``proposal_generator``: CenterNet's class-agnostic heatmap head on P3-P7 (4 GroupNorm convolutions); a
  location's proposal score is ``sqrt(sigmoid(heatmap))``, its box the regressed distances times the stride;
  the top 1000 per level above 1e-4, NMS 0.9, then the best 256.
- ``roi_heads``: a 3-stage cascade (7 x 7 ROIAlign on P3-P5, two FC layers of 1024, class-agnostic
  deltas with weights (10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)); a box's score is
  ``sqrt(mean stage foreground probability * proposal score)``, kept above 0.5 after NMS 0.5, at most 256.
  Then a 6-layer BERT-style text decoder reads the box's 14 x 14 ROIAlign features and writes, greedily (beam
  1, at most 40 tokens, never the same token twice in a row), a description begun by [CLS] (object
  class, "ObjectDet") or by token 104 (dense caption, "DenseCap").
- The mask head is in the checkpoint and loaded; VBench never reads the masks, so it is not run.

The four dimensions are registered rewards (``GritDimension``, one per name in ``GRIT_DIMENSIONS``): the
prompt is the dimension's label (``parse_label``; ``eval/vbench.toml`` takes it from VBench's info file),
16 frames are sampled as VBench's ``load_video(num_frames=16)`` does, and ``dimension_score`` reads the
detections; color's videos without the object are NotApplicable (a ``skipped`` row), as VBench leaves
them out of its mean.

Preprocessing as VBench's ``SingleDefaultPredictor``: the RGB frame as float 0-255 at its own size (VBench
resizes frames whose short side exceeds 768 to 720 before), normalised with ImageNet's mean and std in
0-255 units, zero-padded at the bottom and right to a multiple of 32.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards import vbench_rules
from rewardkit.rewards.base import VideoScorer
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.imagereward import IMAGEREWARD_WEIGHTS
from rewardkit.rewards.viclip import VBenchMiddleFrames
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

__all__ = [
    "GRIT_DIMENSIONS",
    "GRIT_WEIGHTS",
    "Grit",
    "GritConfig",
    "GritDimension",
    "apply_box_deltas",
    "pool_boxes",
    "GritDetections",
    "build_grit_tokenizer",
    "dimension_score",
    "load_grit",
    "parse_label",
    "vbench_resize",
]

# VBench's utils.py downloads this file (GRiT's release) by this URL. No sha256 is published and none could be
# computed here (no weights are downloadable in this environment), so, like the other unhashed files hosted
# outside the Hub (DINO, DOVER-Mobile), it is not checked against a hash; the sha256 of the file loaded is
# recorded in every results row. Its size is not known.
GRIT_FILE = WeightFile(
    "JialianW/GRiT",
    "grit_b_densecap_objectdet.pth",
    0,
    "MIT",
    url="https://datarelease.blob.core.windows.net/grit/models/grit_b_densecap_objectdet.pth",
)
# GRiT's roi heads build ``BertTokenizer.from_pretrained("bert-base-uncased", do_lower_case=True)``.
GRIT_WEIGHTS = {"model": GRIT_FILE, "tokenizer": IMAGEREWARD_WEIGHTS["tokenizer"]}
nms = lazy_import("torchvision.ops", "nms")
batched_nms = lazy_import("torchvision.ops", "batched_nms")
roi_align = lazy_import("torchvision.ops", "roi_align")
GRIT_DIMENSIONS = ("object_class", "multiple_objects", "color", "spatial_relationship")
BERT_VOCAB_SIZE = 30522
OBJECT_BEGIN, CAPTION_BEGIN, END = 101, 104, 102  # [CLS]; 103 + 1 for the second training task; [SEP]
PIXEL_MEAN = (123.675, 116.280, 103.530)
PIXEL_STD = (58.395, 57.12, 57.375)
CASCADE_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
DELTA_CLAMP = math.log(1000.0 / 16)
VBENCH_FRAMES = 16
MAX_SHORT_SIDE, RESIZED_SHORT_SIDE = 768, 720  # VBench resizes frames whose short side exceeds 768 to 720


# ------------------------------------------------------------------------------------------ ViT backbone


def _relative_positions(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """ViTDet's ``get_rel_pos``: the table resized (linear) to ``2 * max - 1`` rows, indexed by q - k."""
    rows = 2 * max(q_size, k_size) - 1
    if table.shape[0] != rows:
        table = F.interpolate(table.reshape(1, table.shape[0], -1).permute(0, 2, 1), size=rows, mode="linear")
        table = table.reshape(-1, rows).permute(1, 0)
    q = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    return table[((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long()]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, rel_size: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_size - 1, dim // heads))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_size - 1, dim // heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.heads, height * width, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", q.reshape(-1, height, width, q.shape[-1]), _relative_positions(height, height, self.rel_pos_h))
        rel_w = torch.einsum("bhwc,wkc->bhwk", q.reshape(-1, height, width, q.shape[-1]), _relative_positions(width, width, self.rel_pos_w))
        attn = (attn.view(-1, height, width, height, width) + rel_h[..., None] + rel_w[..., None, :]).view(-1, height * width, height * width)
        out = (attn.softmax(dim=-1) @ v).view(batch, self.heads, height, width, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(batch, height, width, -1))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """A ViTDet block: attention within ``window`` x ``window`` windows (zero-padded), or global (window 0)."""

    def __init__(self, dim: int, heads: int, window: int, grid: int, mlp: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads, window or grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            batch, height, width, channels = x.shape
            w = self.window
            pad_h, pad_w = (-height) % w, (-width) % w
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            hp, wp = height + pad_h, width + pad_w
            x = x.view(batch, hp // w, w, wp // w, w, channels).permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, channels)
            x = self.attn(x)
            x = x.view(batch, hp // w, wp // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
            x = x[:, :height, :width]
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)


class _ViT(nn.Module):
    """ViTDet's plain ViT (``bottom_up``): ``[B, 3, H, W]`` -> ``[B, dim, H / patch, W / patch]``."""

    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        c = config
        self.patch_embed = _PatchEmbed(c.dim, c.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.pretrain_grid**2 + 1, c.dim))
        self.blocks = nn.ModuleList(
            _Block(c.dim, c.heads, c.window if i in c.window_blocks else 0, c.image_size // c.patch, c.mlp) for i in range(c.depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)
        height, width = x.shape[1:3]
        grid = int(math.sqrt(self.pos_embed.shape[1] - 1))
        pos = self.pos_embed[:, 1:].reshape(1, grid, grid, -1)
        if (grid, grid) != (height, width):
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(height, width), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        x = x + pos
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)


class _TopBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)


def _channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Backbone(nn.Module):
    """GRiT's ``ViT_FPN``: P3-P7 (strides 8-128) from the ViT's stride-16 map."""

    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        dim, out = config.dim, config.channels
        self.bottom_up = _ViT(config)
        self.top_block = _TopBlock(out)
        self.fpn_stride_16_8 = nn.ConvTranspose2d(dim, dim, 2, stride=2, bias=False)
        for stride in (8, 16, 32):
            setattr(self, f"fpn_stride{stride}_conv1", nn.Conv2d(dim, out, 1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm1", nn.LayerNorm(out))
            setattr(self, f"fpn_stride{stride}_conv2", nn.Conv2d(out, out, 3, padding=1, bias=False))
            setattr(self, f"fpn_stride{stride}_norm2", nn.LayerNorm(out))

    def _level(self, stride: int, x: torch.Tensor) -> torch.Tensor:
        x = _channel_norm(getattr(self, f"fpn_stride{stride}_norm1"), getattr(self, f"fpn_stride{stride}_conv1")(x))
        return _channel_norm(getattr(self, f"fpn_stride{stride}_norm2"), getattr(self, f"fpn_stride{stride}_conv2")(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.bottom_up(x)
        p3 = self._level(8, self.fpn_stride_16_8(features))
        p4 = self._level(16, features)
        p5 = self._level(32, F.max_pool2d(features, 2, 2))
        p6 = self.top_block.p6(p5)
        return [p3, p4, p5, p6, self.top_block.p7(F.relu(p6))]


# ------------------------------------------------------------------------------------ CenterNet proposals


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))


class _CenterNetHead(nn.Module):
    """Class-agnostic CenterNet head (``ONLY_PROPOSAL``): no class tower, a box tower of GroupNorm convs."""

    def __init__(self, channels: int, convs: int, levels: int) -> None:
        super().__init__()
        groups = 32 if channels % 32 == 0 else 25
        tower: list[nn.Module] = []
        for _ in range(convs):
            tower += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(groups, channels), nn.ReLU()]
        self.cls_tower = nn.Sequential()
        self.bbox_tower = nn.Sequential(*tower)
        self.share_tower = nn.Sequential()
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.scales = nn.ModuleList(_Scale() for _ in range(levels))
        self.agn_hm = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        regressions, heatmaps = [], []
        for level, feature in enumerate(features):
            tower = self.bbox_tower(feature)
            heatmaps.append(self.agn_hm(tower))
            regressions.append(F.relu(self.bbox_pred(tower) * self.scales[level].scale))
        return regressions, heatmaps


class _ProposalGenerator(nn.Module):
    STRIDES = (8, 16, 32, 64, 128)

    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        self.centernet_head = _CenterNetHead(config.channels, config.centernet_convs, len(self.STRIDES))

    def forward(self, features: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image ``(boxes [R, 4], scores [R])``: CenterNet's ``predict_instances`` then ``nms_and_topK``."""
        regressions, heatmaps = self.centernet_head(features)
        per_image: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(features[0].shape[0])]
        for stride, regression, heatmap in zip(self.STRIDES, regressions, heatmaps, strict=True):
            height, width = heatmap.shape[-2:]
            ys, xs = torch.meshgrid(
                torch.arange(0, height * stride, stride, dtype=torch.float32, device=heatmap.device),
                torch.arange(0, width * stride, stride, dtype=torch.float32, device=heatmap.device),
                indexing="ij",
            )
            grid = torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=1) + stride // 2
            probabilities = heatmap.sigmoid().flatten(1)  # [B, HW]
            distances = (regression * stride).flatten(2).transpose(1, 2)  # [B, HW, 4]
            for image, (prob, dist) in enumerate(zip(probabilities, distances, strict=True)):
                keep = torch.nonzero(prob > 1e-4).squeeze(1)
                scores = prob[keep]
                if len(keep) > 1000:
                    scores, top = scores.topk(1000, sorted=False)
                    keep = keep[top]
                d, g = dist[keep], grid[keep]
                boxes = torch.stack([g[:, 0] - d[:, 0], g[:, 1] - d[:, 1], g[:, 0] + d[:, 2], g[:, 1] + d[:, 3]], dim=1)
                boxes[:, 2] = torch.maximum(boxes[:, 2], boxes[:, 0] + 0.01)
                boxes[:, 3] = torch.maximum(boxes[:, 3], boxes[:, 1] + 0.01)
                per_image[image].append((boxes, scores.sqrt()))
        proposals = []
        for levels in per_image:
            boxes = torch.cat([b for b, _ in levels])
            scores = torch.cat([s for _, s in levels])
            keep = nms(boxes.float(), scores.float(), 0.9)
            boxes, scores = boxes[keep], scores[keep]
            if len(scores) > 256:  # CenterNet keeps every score at least the 256th largest (ties included)
                threshold = torch.kthvalue(scores.float().cpu(), len(scores) - 256 + 1).values.item()
                chosen = torch.nonzero(scores >= threshold).squeeze(1)
                boxes, scores = boxes[chosen], scores[chosen]
            proposals.append((boxes, scores))
        return proposals


# ---------------------------------------------------------------------------------------- cascade heads


def pool_boxes(features: Sequence[torch.Tensor], boxes: torch.Tensor, size: int) -> torch.Tensor:
    """detectron2's ROIPooler (ROIAlignV2, sampling ratio 0) over P3-P5 for one image's boxes: a box goes
    to level ``floor(4 + log2(sqrt(area) / 224 + 1e-8))`` clamped to 3-5."""
    levels = torch.floor(4 + torch.log2(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt() / 224 + 1e-8))
    levels = levels.clamp(3, 5).long() - 3
    rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)
    out = features[0].new_zeros(len(boxes), features[0].shape[1], size, size)
    for level, feature in enumerate(features[:3]):
        chosen = torch.nonzero(levels == level).squeeze(1)
        if len(chosen):
            out[chosen] = roi_align(feature, rois[chosen].to(feature.dtype), size, 1.0 / 2 ** (level + 3), 0, True)
    return out


def apply_box_deltas(deltas: torch.Tensor, boxes: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """detectron2's ``Box2BoxTransform.apply_deltas`` for class-agnostic deltas ``[R, 4]``."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw, dh = (deltas[:, 2] / ww).clamp(max=DELTA_CLAMP), (deltas[:, 3] / wh).clamp(max=DELTA_CLAMP)
    x, y = dx * widths + ctr_x, dy * heights + ctr_y
    w, h = torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], dim=1)


def _clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height), boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)


class _BoxHead(nn.Module):
    def __init__(self, channels: int, fc: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels * 49, fc)
        self.fc2 = nn.Linear(fc, fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class _BoxPredictor(nn.Module):
    def __init__(self, fc: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(fc, 2)
        self.bbox_pred = nn.Sequential(nn.Linear(fc, fc), nn.ReLU(), nn.Linear(fc, 4))


class _MaskHead(nn.Module):
    """``MaskRCNNConvUpsampleHead`` (4 convs, class-agnostic): in the checkpoint; VBench never uses masks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for index in range(1, 5):
            setattr(self, f"mask_fcn{index}", nn.Conv2d(channels, channels, 3, padding=1))
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.predictor = nn.Conv2d(channels, 1, 1)


# ------------------------------------------------------------------------------------------ text decoder


class _BertSelf(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)


class _DenseNorm(nn.Module):
    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cin, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _BertAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self = _BertSelf(hidden)
        self.output = _DenseNorm(hidden, hidden)


class _Dense(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cin, cout)


class _BertLayer(nn.Module):
    def __init__(self, hidden: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _BertAttention(hidden)
        self.intermediate = _Dense(hidden, ffn)
        self.output = _DenseNorm(ffn, hidden)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Post-norm BERT layer: ``queries`` attend to ``keys`` (the sequence they belong to, or a prefix
        of it); ``mask`` is added to the attention scores."""
        attention = self.attention.self

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], x.shape[1], self.heads, -1).permute(0, 2, 1, 3)

        q, k, v = split(attention.query(queries)), split(attention.key(keys)), split(attention.value(keys))
        scores = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-1, -2))
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(scores.softmax(dim=-1), v).permute(0, 2, 1, 3).reshape(queries.shape)
        x = self.attention.output(context, queries)
        hidden = self.intermediate.dense(x)
        return self.output(hidden * 0.5 * (1.0 + torch.erf(hidden / math.sqrt(2.0))), x)  # BERT's erf GELU


class _Embedding(nn.Module):
    def __init__(self, vocab: int, hidden: int, positions: int) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(positions, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=1e-8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)[None]
        return self.layer_norm(self.words(tokens) + self.positions(positions))


class _Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer(hidden, ffn, heads) for _ in range(layers))


class _Transformer(nn.Module):
    def __init__(self, layers: int, hidden: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.encoder = _Encoder(layers, hidden, ffn, heads)


class _Textual(nn.Module):
    """``TransformerDecoderTextualHead`` with the ``bert_en`` decoder: one BERT encoder over [object features;
    text] where the object features attend only to each other and each text token to the object features
    and the tokens before it. The output layer's weight is tied to the word embedding."""

    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        c = config
        self.object_feature_projection = nn.Sequential(nn.Linear(c.channels, c.text_hidden), nn.LayerNorm(c.text_hidden))
        self.embedding = _Embedding(c.vocab, c.text_hidden, c.text_positions)
        self.transformer = _Transformer(c.text_layers, c.text_hidden, c.text_ffn, c.text_heads)
        self.output = nn.Linear(c.text_hidden, c.vocab)
        self.output.weight = self.embedding.words.weight

    def memory(self, object_features: torch.Tensor) -> list[torch.Tensor]:
        """The object features' states entering each layer (they never attend to the text, so they are the
        same at every decoding step)."""
        states = [self.object_feature_projection(object_features)]
        for layer in self.transformer.encoder.layer[:-1]:
            states.append(layer(states[-1], states[-1], None))
        return states

    def next_logits(self, memory: Sequence[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """The logits ``[N, vocab]`` after the last of ``tokens`` ``[N, L]``."""
        text = self.embedding(tokens)
        length, count = tokens.shape[1], memory[0].shape[1]
        causal = torch.full((length, length), float("-inf"), device=text.device, dtype=text.dtype).triu(1)
        mask = torch.cat([text.new_zeros(length, count), causal], dim=1)
        for layer, states in zip(self.transformer.encoder.layer, memory, strict=True):
            text = layer(text, torch.cat([states, text], dim=1), mask)
        return self.output(text[:, -1]).float()


class _TextDecoder(nn.Module):
    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        self.textual = _Textual(config)

    @torch.no_grad()
    def generate(self, object_features: torch.Tensor, begin: int, max_steps: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding as GRiT's ``AutoRegressiveBeamSearch`` with beam 1: ``(tokens [N, L] starting
        with ``begin``, mean log-probability [N])``. The last token is never repeated; after [SEP] only
        [SEP] follows; the mean is over the tokens before the first [SEP] plus one (at least 1)."""
        memory = self.textual.memory(object_features)
        count = object_features.shape[0]
        tokens = torch.full((count, 1), begin, dtype=torch.long, device=object_features.device)
        first = F.log_softmax(self.textual.next_logits(memory, tokens), dim=1)
        logprob, token = first.max(dim=1)
        if (token == END).all():  # the official search returns at once (the description is empty)
            return token[:, None], logprob
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        while tokens.shape[1] < max_steps:
            last = tokens[:, -1]
            if (last == END).all():
                break
            logits = self.textual.next_logits(memory, tokens).scatter(1, last[:, None], -10000)
            ended = torch.full_like(logits, float("-inf"))
            ended[:, END] = 0
            logits = torch.where((last == END)[:, None], ended, logits)
            step, token = F.log_softmax(logits, dim=1).max(dim=1)
            logprob = logprob + step
            tokens = torch.cat([tokens, token[:, None]], dim=1)
        valid = (tokens != END).sum(dim=1) + (tokens == END).any(dim=1) - 1
        return tokens, logprob / valid.clamp(min=1)


class _RoiHeads(nn.Module):
    def __init__(self, config: GritConfig) -> None:
        super().__init__()
        self.box_head = nn.ModuleList(_BoxHead(config.channels, config.fc) for _ in CASCADE_WEIGHTS)
        self.box_predictor = nn.ModuleList(_BoxPredictor(config.fc) for _ in CASCADE_WEIGHTS)
        self.mask_head = _MaskHead(config.channels)
        self.text_decoder = _TextDecoder(config)

    def detect(self, features: Sequence[torch.Tensor], boxes: torch.Tensor, proposal_scores: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's cascade: ``(boxes [K, 4], scores [K])`` above 0.5 after NMS 0.5, best first, at most 256."""
        height, width = size
        probabilities, predicted = [], boxes
        for stage, weights in enumerate(CASCADE_WEIGHTS):
            if stage:
                boxes = _clip(predicted, height, width)
            x = self.box_head[stage](pool_boxes(features, boxes, 7))
            predictor = self.box_predictor[stage]
            probabilities.append(F.softmax(predictor.cls_score(x), dim=-1))
            predicted = apply_box_deltas(predictor.bbox_pred(x), boxes, weights)
        scores = (sum(probabilities) * (1.0 / len(CASCADE_WEIGHTS)) * proposal_scores[:, None]) ** 0.5
        valid = torch.isfinite(predicted).all(dim=1) & torch.isfinite(scores).all(dim=1)
        predicted, scores = _clip(predicted[valid], height, width), scores[valid, 0]
        chosen = torch.nonzero(scores > 0.5).squeeze(1)
        predicted, scores = predicted[chosen], scores[chosen]
        keep = batched_nms(predicted, scores, torch.zeros_like(chosen), 0.5)[:256]
        return predicted[keep], scores[keep]


@dataclass(frozen=True)
class GritConfig:
    """GRiT-B's sizes (the defaults); ``load_grit`` reads them from a checkpoint's shapes."""

    dim: int = 768
    depth: int = 12
    heads: int = 12
    patch: int = 16
    window: int = 14
    window_blocks: tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10)
    image_size: int = 1024  # the global blocks' relative-position tables cover 1024 / 16 positions
    pretrain_grid: int = 14
    mlp: int = 3072
    channels: int = 256
    centernet_convs: int = 4
    fc: int = 1024
    vocab: int = BERT_VOCAB_SIZE
    text_hidden: int = 768
    text_layers: int = 6
    text_heads: int = 12
    text_ffn: int = 3072
    text_positions: int = 1024

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> GritConfig:
        """The sizes a checkpoint's shapes imply (head counts: the ViT's from its relative-position tables,
        the text decoder's as BERT's, 64 channels per head)."""
        vit = "backbone.bottom_up."
        try:
            dim, _, patch, _ = state[f"{vit}patch_embed.proj.weight"].shape
            depth = len({key.split(".")[3] for key in state if key.startswith(f"{vit}blocks.")})
            rows = [state[f"{vit}blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
            head_dim = state[f"{vit}blocks.0.attn.rel_pos_h"].shape[1]
            global_rows = max(rows)
            text = "roi_heads.text_decoder.textual."
            vocab, hidden = state[f"{text}embedding.words.weight"].shape
            return cls(
                dim=dim, depth=depth, heads=dim // head_dim, patch=patch,
                window=(min(rows) + 1) // 2,
                window_blocks=tuple(i for i, r in enumerate(rows) if r != global_rows),
                image_size=(global_rows + 1) // 2 * patch,
                pretrain_grid=int(math.isqrt(state[f"{vit}pos_embed"].shape[1] - 1)),
                mlp=state[f"{vit}blocks.0.mlp.fc1.weight"].shape[0],
                channels=state["backbone.fpn_stride8_conv1.weight"].shape[0],
                centernet_convs=sum(1 for key in state if key.startswith("proposal_generator.centernet_head.bbox_tower.") and key.endswith(".weight") and state[key].ndim == 4),
                fc=state["roi_heads.box_head.0.fc1.weight"].shape[0],
                vocab=vocab, text_hidden=hidden,
                text_layers=len({key.split(".")[6] for key in state if key.startswith(f"{text}transformer.encoder.layer.")}),
                text_heads=max(1, hidden // 64),
                text_ffn=state[f"{text}transformer.encoder.layer.0.intermediate.dense.weight"].shape[0],
                text_positions=state[f"{text}embedding.positions.weight"].shape[0],
            )
        except KeyError as error:
            raise WeightsMismatchError(f"not a GRiT checkpoint: it has no {error.args[0]!r}; expected VBench's grit_b_densecap_objectdet.pth") from None


@dataclass(frozen=True)
class GritDetections:
    """One frame's detections, best first: boxes ``[K, 4]`` (x0, y0, x1, y1 in pixels), scores ``[K]``
    (GRiT's ``sqrt(box score * description probability)``), the object names ("ObjectDet") and, when
    asked for, the dense captions ("DenseCap") of the same boxes."""

    boxes: torch.Tensor
    scores: torch.Tensor
    objects: list[str]
    captions: list[str] | None


class Grit(nn.Module):
    """GRiT with the official parameter names: ``detect(frames)`` runs it on uint8 RGB frames."""

    def __init__(self, config: GritConfig = GritConfig(), tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = _Backbone(config)
        self.proposal_generator = _ProposalGenerator(config)
        self.roi_heads = _RoiHeads(config)
        self.tokenizer = tokenizer
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1), persistent=False)

    def describe(self, features: Sequence[torch.Tensor], boxes: torch.Tensor, begin: int) -> tuple[list[str], torch.Tensor]:
        """Descriptions of ``boxes`` (begun by ``begin``) and their mean log-probabilities."""
        pooled = pool_boxes(features, boxes, 14)
        tokens, logprobs = self.roi_heads.text_decoder.generate(pooled.flatten(2).transpose(1, 2), begin)
        texts = [self.tokenizer.decode(row[1:], skip_special_tokens=True) for row in tokens.tolist()]
        return texts, logprobs

    @torch.no_grad()
    def detect(self, frames: torch.Tensor, captions: bool = False) -> list[GritDetections]:
        """Detections for uint8 frames ``[N, 3, H, W]`` (RGB), one frame at a time through the heads as
        GRiT's predictor (the backbone runs on the batch)."""
        if self.tokenizer is None:
            raise ValueError("Grit needs a tokenizer to turn descriptions into text (load it with load_grit)")
        parameter = next(self.parameters())
        height, width = frames.shape[-2:]
        images = (frames.to(parameter.device, torch.float32) - self.pixel_mean) / self.pixel_std
        images = F.pad(images, (0, (-width) % 32, 0, (-height) % 32)).to(parameter.dtype)
        features = self.backbone(images)
        results = []
        for index, (boxes, scores) in enumerate(self.proposal_generator(features)):
            levels = [feature[index : index + 1] for feature in features]
            boxes, scores = self.roi_heads.detect(levels, boxes, scores, (height, width))
            if not len(boxes):
                results.append(GritDetections(boxes.cpu(), scores.cpu(), [], [] if captions else None))
                continue
            objects, logprobs = self.describe(levels, boxes, OBJECT_BEGIN)
            texts = None
            if captions:  # VBench's DenseCap run: captions score the boxes; det_obj names them
                texts, logprobs = self.describe(levels, boxes, CAPTION_BEGIN)
            final = (scores * torch.exp(logprobs)) ** 0.5
            results.append(GritDetections(boxes.float().cpu(), final.float().cpu(), objects, texts))
        return results


def build_grit_tokenizer(folder: str | Path) -> Any:
    """bert-base-uncased (lower case) from ``folder``; any vocabulary but the 30522-token one is refused."""
    from transformers import BertTokenizer

    folder = Path(folder)
    if not (folder / "vocab.txt").is_file():
        raise WeightsMismatchError(f"no vocab.txt in {folder}: GRiT needs the bert-base-uncased tokenizer files (vocab.txt, tokenizer_config.json)")
    tokenizer = BertTokenizer.from_pretrained(str(folder), do_lower_case=True)
    if len(tokenizer) != BERT_VOCAB_SIZE:
        raise WeightsMismatchError(f"the tokenizer in {folder} has {len(tokenizer)} tokens; GRiT needs the 30522-token bert-base-uncased vocabulary")
    return tokenizer


def load_grit(path: str | Path, tokenizer_folder: str | Path) -> Grit:
    """GRiT from a detectron2 checkpoint (``{"model": state_dict, ...}`` as ``grit_b_densecap_objectdet.pth``,
    or a bare state dict), loaded strictly (eval, frozen), with its tokenizer."""
    state = load_state_dict(path)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    model = Grit(GritConfig.from_state_dict(state), build_grit_tokenizer(tokenizer_folder))
    load_strict(model, state, str(path))
    return model.eval().requires_grad_(False)


def parse_label(dimension: str, label: str) -> str | tuple[str, str] | dict[str, str]:
    """A dimension's label, checked: the object name (object_class), "A and B" (multiple_objects), ``(colour,
    object)`` from a colour prompt (color) or the spatial key (spatial_relationship). A ValueError says what
    the label must look like."""
    if dimension == "object_class":
        return label
    if dimension == "multiple_objects":
        if " and " not in label:
            raise ValueError(f"multiple_objects labels are 'A and B' (VBench's auxiliary object), got {label!r}")
        return label
    if dimension == "color":
        colours = [colour for colour in vbench_rules.COLOURS if colour in label]
        if len(colours) != 1:
            raise ValueError(f"color needs a prompt naming exactly one of {', '.join(vbench_rules.COLOURS)} (as VBench's colour prompts do), got {label!r}")
        return colours[0], vbench_rules.color_object(label, colours[0])
    if dimension == "spatial_relationship":
        try:
            key = json.loads(label)
        except json.JSONDecodeError:
            key = None
        if not isinstance(key, dict) or not all(isinstance(key.get(name), str) for name in ("object_a", "object_b", "relationship")):
            raise ValueError(
                'spatial_relationship labels are VBench\'s auxiliary info as JSON: {"object_a": "car", "object_b": "dog", '
                f'"relationship": "on the left of"}}, got {label!r}'
            )
        return key
    raise ValueError(f"GRiT scores {', '.join(GRIT_DIMENSIONS)}, not {dimension!r}")


def dimension_score(dimension: str, label: str, frames: Sequence[GritDetections]) -> float:
    """One video's VBench score from GRiT's detections on its (16) frames, read as VBench's dimension files
    read ``run_caption_tensor``'s tuples (quirks included):

    - ``object_class`` / ``multiple_objects`` (``label``: the auxiliary ``object``, "A and B" for the
      second): a frame's classes are the set of all its box names; the score is the fraction of frames;
    - ``color`` (``label``: the prompt, e.g. "a red bicycle"; the colour is the one of VBench's colour
      words it contains): every caption of a frame is paired with the frame's FIRST box name
      (``cap_det[2][0]``); colour frames / object frames, NaN when no frame shows the object (VBench leaves
      such videos out of the dimension's mean);
    - ``spatial_relationship`` (``label``: VBench's ``{"object_a", "object_b", "relationship"}`` as JSON):
      boxes named either object, truncated to integers as VBench's ``int(a)``; the mean of the per-frame
      best position score.
    """
    key = parse_label(dimension, label)
    if dimension == "object_class":
        return vbench_rules.object_class_frames(label, [set(f.objects) for f in frames]) / len(frames)
    if dimension == "multiple_objects":
        return vbench_rules.multiple_objects_frames(label, [set(f.objects) for f in frames]) / len(frames)
    if dimension == "color":
        colour, target = key
        pairs = [[(caption, f.objects[0]) for caption in f.captions or []] or [("", "")] for f in frames]
        object_frames, colour_frames = vbench_rules.color_counts(colour, target, pairs)
        return colour_frames / object_frames if object_frames else math.nan
    detections = [[(name, [int(v) for v in box.tolist()]) for name, box in zip(f.objects, f.boxes, strict=True)] for f in frames]
    scores = vbench_rules.spatial_frame_scores(key, detections)
    return sum(scores) / len(scores)


def vbench_resize(video: torch.Tensor, antialias: bool) -> torch.Tensor:
    """VBench's resize of uint8 frames ``[K, 3, H, W]`` whose short side exceeds 768: to 720 on the short side
    (sizes truncated, as ``int(scale * h)``), bilinear; ``antialias`` as torchvision's ``Resize`` on tensors
    (object_class, multiple_objects, spatial_relationship), without as OpenCV's ``INTER_LINEAR`` (color; its
    fixed-point rounding may differ by a grey level)."""
    height, width = video.shape[-2:]
    if min(height, width) <= MAX_SHORT_SIDE:
        return video
    scale = RESIZED_SHORT_SIDE / min(height, width)
    size = (int(scale * height), int(scale * width))
    resized = F.interpolate(video.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return resized.round().clamp(0, 255).to(torch.uint8)


class GritDimension(VideoScorer):
    """One of VBench's GRiT dimensions (``GRIT_DIMENSIONS``) on 16 frames (``get_frame_indices(16, T,
    "middle")``); the prompt is the dimension's label (``parse_label``). color's score is NaN for a video in
    which no frame shows the object: such a video raises NotApplicable (left out, as VBench leaves it out
    of the mean). A frame sampled twice (videos shorter than 16 frames) is detected once."""

    needs_prompt = True

    def __init__(self, model: Grit, dimension: str) -> None:
        super().__init__()
        if dimension not in GRIT_DIMENSIONS:
            raise ValueError(f"GRiT scores {', '.join(GRIT_DIMENSIONS)}, not {dimension!r}")
        self.model = model
        self.dimension = dimension
        self.sampler = VBenchMiddleFrames(VBENCH_FRAMES)

    def detections(self, frames: torch.Tensor, indices: Sequence[int] | None = None) -> list[GritDetections]:
        """GRiT's detections on one video's sampled uint8 frames ``[K, 3, H, W]`` (captions for color only, as
        VBench's ObjectDet / DenseCap models)."""
        positions = list(range(len(frames))) if indices is None else [int(index) for index in indices]
        unique = list(dict.fromkeys(positions))
        first = [positions.index(index) for index in unique]
        video = vbench_resize(frames[first], antialias=self.dimension != "color")
        found = dict(zip(unique, self.model.detect(video, captions=self.dimension == "color"), strict=True))
        return [found[index] for index in positions]

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: Any = None,
    ) -> torch.Tensor:
        videos = as_float_videos(frames, keep_uint8=True)
        labels = check_prompts(prompts, videos.shape[0], self.dimension, needs_prompt=True)
        for label in labels:
            parse_label(self.dimension, label)
        if videos.dtype != torch.uint8:
            videos = (videos * 255).round().clamp(0, 255).to(torch.uint8)
        scores = torch.tensor(
            [
                dimension_score(self.dimension, label, self.detections(video, None if indices is None else indices[row].tolist()))
                for row, (video, label) in enumerate(zip(videos, labels, strict=True))
            ],
            dtype=torch.float32,
        )
        if scores.isnan().any():
            absent = scores.isnan().nonzero().flatten().tolist()
            raise NotApplicable(
                f"color: no frame of video(s) {absent} shows the prompt's object with a colour in its caption; "
                "VBench leaves such videos out of the dimension", scores=scores,
            )
        return scores


LABEL_EXAMPLES = {
    "object_class": ("car", "dog"),
    "multiple_objects": ("car and dog", "cat and bird"),
    "color": ("a red car", "a blue car"),
    "spatial_relationship": (
        '{"object_a": "car", "object_b": "dog", "relationship": "on the left of"}',
        '{"object_a": "cat", "object_b": "car", "relationship": "on the top of"}',
    ),
}
LABEL_HELP = {
    "object_class": "the object's name (VBench's auxiliary object, e.g. 'person')",
    "multiple_objects": "'A and B' (VBench's auxiliary object)",
    "color": "the colour prompt itself (e.g. 'a red bicycle')",
    "spatial_relationship": "VBench's auxiliary spatial_relationship as JSON",
}


def _register(dimension: str) -> None:
    @register_reward(
        dimension,
        modality="video",
        needs_prompt=True,
        differentiable=False,
        score_range=(0.0, 1.0),
        weights=GRIT_WEIGHTS,
        description=f"VBench {dimension}: GRiT-B detections on 16 frames; the prompt is {LABEL_HELP[dimension]}",
        paper="arXiv:2311.17982; GRiT arXiv:2212.00280",
        repository="https://github.com/Vchitect/VBench",
        prompt_examples=LABEL_EXAMPLES[dimension],
    )
    def create(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> GritDimension:
        """VBench's GRiT dimension; ``weights`` is ``grit_b_densecap_objectdet.pth`` or ``{"model": ...,
        "tokenizer": FOLDER with bert-base-uncased's vocab.txt}``."""

        def build(paths: Mapping[str, Path]) -> GritDimension:
            model = load_grit(paths["model"], paths["tokenizer"].parent).to(device=device, dtype=dtype)
            return GritDimension(model, dimension)

        return build_with_weights(dimension, weights, {}, build)


for _dimension in GRIT_DIMENSIONS:
    _register(_dimension)
