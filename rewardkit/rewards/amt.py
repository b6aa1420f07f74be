"""AMT-S frame interpolation (Li et al., "AMT: All-Pairs Multi-Field Transforms for Efficient Frame
Interpolation", CVPR 2023, https://github.com/MCG-NKU/AMT) and VBench's ``motion_smoothness`` built on it.

VBench (Huang et al., arXiv:2311.17982, https://github.com/Vchitect/VBench, ``vbench/motion_smoothness.py``
with ``vbench/third_party/amt``): read every frame (RGB uint8), keep the even frames 0, 2, 4, ..., scale
them to [0, 1], pad them to multiples of 16 (replicate, centred), let AMT-S interpolate the middle of each
consecutive pair (``embt = 0.5``), unpad, convert back with ``(x * 255).clip(0, 255).astype(uint8)``
(truncation), and compare the interpolated frames with the real odd frames 1, 3, 5, ...: the score is
``(255 - mean |real - interpolated|) / 255``, the mean per frame over pixels and channels, then over frames.

The network below keeps the official parameter names (``amt-s.pth``'s ``state_dict``, loaded strictly).
VBench's GPU path shrinks frames by a factor from a VRAM heuristic (``scale < 1`` only when
``1024 * 512 / (H * W) * sqrt((VRAM - 2500 MiB) / 1500 MiB) < 1``, e.g. 1080p on a GPU under ~4.6 GB);
rewardkit always interpolates at full resolution, which is what VBench does on the CPU and on larger GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos
from rewardkit.video.sampling import All
from rewardkit.weights import WeightsArgument, build_with_weights, load_state_dict, load_strict

__all__ = [
    "AMT_S_WEIGHTS",
    "AmtS",
    "MotionSmoothness",
    "create_motion_smoothness",
    "interpolation_score",
    "load_amt_s",
]

# Hugging Face file that VBench's pretrained/amt_model/download.sh fetches; checked against the Hub's LFS hash.
# Size: the tensor bytes of its state dict (2.99 M float32 parameters), counted from the architecture.
AMT_S_WEIGHTS = WeightFile("lalala125/AMT", "amt-s.pth", 11_977_016, "CC-BY-NC-4.0")
PAIRS_PER_FORWARD = 4  # interpolated pairs per network call (each pair is independent)


def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp by ``flow`` (pixels), border padding, on AMT's align-corners grid; sampled in float32
    whatever the network's dtype (bf16 cannot hold a 128 px grid's positions), returned in ``image``'s."""
    batch, _, height, width = flow.shape
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device).view(1, 1, 1, width).expand(batch, -1, height, -1)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device).view(1, 1, height, 1).expand(batch, -1, -1, width)
    base = torch.cat([xs, ys], 1)
    flow = flow.float()
    scaled = torch.cat([flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)], 1)
    grid = (base + scaled).permute(0, 2, 3, 1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True).to(image.dtype)


def _conv_prelu(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.PReLU(cout))


class _Bottleneck(nn.Module):
    """RAFT's bottleneck block with instance norm (no norm parameters)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout // 4, 1)
        self.conv2 = nn.Conv2d(cout // 4, cout // 4, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(cout // 4, cout, 1)
        self.norms = nn.ModuleList([nn.InstanceNorm2d(cout // 4), nn.InstanceNorm2d(cout // 4), nn.InstanceNorm2d(cout)])
        self.downsample = None if stride == 1 else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), nn.InstanceNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv, norm in zip((self.conv1, self.conv2, self.conv3), self.norms, strict=True):
            y = F.relu(norm(conv(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class _FeatureEncoder(nn.Module):
    """RAFT's small encoder (instance norm): 1/8-resolution features for the correlation volume."""

    def __init__(self, output_dim: int = 84) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2, padding=3)
        self.norm1 = nn.InstanceNorm2d(32)
        widths = ((32, 32, 1), (32, 64, 2), (64, 96, 2))
        for index, (cin, cout, stride) in enumerate(widths, 1):
            setattr(self, f"layer{index}", nn.Sequential(_Bottleneck(cin, cout, stride), _Bottleneck(cout, cout, 1)))
        self.conv2 = nn.Conv2d(96, output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _ResBlock(nn.Module):
    """IFRNet's residual block: the last ``side`` channels get extra convolutions."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.conv1 = _conv_prelu(channels, channels)
        self.conv2 = _conv_prelu(side, side)
        self.conv3 = _conv_prelu(channels, channels)
        self.conv4 = _conv_prelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, : -self.side], self.conv2(out[:, -self.side :])], 1))
        out = self.conv5(torch.cat([out[:, : -self.side], self.conv4(out[:, -self.side :])], 1))
        return self.prelu(x + out)


class _Pyramid(nn.Module):
    """IFRNet's context encoder: four stride-2 levels."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        previous = 3
        for index, width in enumerate(channels, 1):
            setattr(self, f"pyramid{index}", nn.Sequential(_conv_prelu(previous, width, 3, 2, 1), _conv_prelu(width, width)))
            previous = width
        self.levels = len(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index in range(1, self.levels + 1):
            x = getattr(self, f"pyramid{index}")(x)
            features.append(x)
        return features


def _decoder_block(cin: int, cmid: int, side: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv_prelu(cin, cmid), _ResBlock(cmid, side), nn.ConvTranspose2d(cmid, cout, 4, 2, 1))


class _InitDecoder(nn.Module):
    def __init__(self, cin: int, cout: int, side: int) -> None:
        super().__init__()
        self.convblock = _decoder_block(2 * cin + 1, 2 * cin, side, cout + 4)

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, embt: torch.Tensor) -> tuple[torch.Tensor, ...]:
        time = embt.repeat(1, 1, *f0.shape[2:])
        out = self.convblock(torch.cat([f0, f1, time], 1))
        return out[:, 0:2], out[:, 2:4], out[:, 4:]


class _IntermediateDecoder(nn.Module):
    def __init__(self, cin: int, cout: int, side: int) -> None:
        super().__init__()
        self.convblock = _decoder_block(3 * cin + 4, 3 * cin, side, cout + 4)

    def forward(self, ft: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.convblock(torch.cat([ft, _warp(f0, flow0), _warp(f1, flow1), flow0, flow1], 1))
        return out[:, 0:2] + 2.0 * _resize(flow0, 2.0), out[:, 2:4] + 2.0 * _resize(flow1, 2.0), out[:, 4:]


class _MultiFlowDecoder(nn.Module):
    def __init__(self, cin: int, side: int, flows: int) -> None:
        super().__init__()
        self.flows = flows
        self.convblock = _decoder_block(3 * cin + 4, 3 * cin, side, 8 * flows)

    def forward(self, ft: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.flows
        out = self.convblock(torch.cat([ft, _warp(f0, flow0), _warp(f1, flow1), flow0, flow1], 1))
        delta0, delta1, mask, residual = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        flow0 = delta0 + 2.0 * _resize(flow0, 2.0).repeat(1, n, 1, 1)
        flow1 = delta1 + 2.0 * _resize(flow1, 2.0).repeat(1, n, 1, 1)
        return flow0, flow1, torch.sigmoid(mask), residual


class _UpdateBlock(nn.Module):
    """RAFT-style small update: correlation + flow features -> feature and bidirectional flow residuals."""

    def __init__(self, cdim: int, scale: int | None, corr_planes: int, hidden: int = 76, flow_dim: int = 20, corr_dim: int = 64, fc_dim: int = 68) -> None:
        super().__init__()
        self.scale = scale
        self.convc1 = nn.Conv2d(2 * corr_planes, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, 2 * flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * flow_dim, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def head(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(hidden, cout, 3, padding=1))

        self.gru = head(fc_dim + 4 + cdim, hidden)
        self.feat_head = head(hidden, cdim)
        self.flow_head = head(hidden, 4)

    def forward(self, net: torch.Tensor, flow: torch.Tensor, corr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            net = _resize(net, 1 / self.scale)
        corr_features = F.leaky_relu(self.convc1(corr), 0.1)
        flow_features = F.leaky_relu(self.convf2(F.leaky_relu(self.convf1(flow), 0.1)), 0.1)
        merged = F.leaky_relu(self.conv(torch.cat([corr_features, flow_features], 1)), 0.1)
        out = self.gru(torch.cat([merged, flow, net], 1))
        delta_net, delta_flow = self.feat_head(out), self.flow_head(out)
        if self.scale is not None:
            delta_net = _resize(delta_net, self.scale)
            delta_flow = self.scale * _resize(delta_flow, self.scale)
        return delta_net, delta_flow


def _sample(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` at pixel coordinates ``coords`` ``[..., 2]`` (x, y), zeros outside, align corners."""
    height, width = volume.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
    return F.grid_sample(volume, grid, align_corners=True)


class _BidirectionalCorrelation:
    """All-pairs correlation of two 1/8 feature maps, pooled into ``levels`` levels, read both ways."""

    def __init__(self, fmap0: torch.Tensor, fmap1: torch.Tensor, levels: int, radius: int) -> None:
        self.levels, self.radius = levels, radius
        batch, dim, height, width = fmap0.shape
        # In float32 whatever the network's dtype: the volume is sampled at float32 pixel coordinates.
        fmap0, fmap1 = fmap0.float(), fmap1.float()
        corr = torch.matmul(fmap0.view(batch, dim, -1).transpose(1, 2), fmap1.view(batch, dim, -1))
        corr = corr.view(batch, height, width, 1, height, width) / torch.sqrt(torch.tensor(dim).float())
        forward = corr.reshape(batch * height * width, 1, height, width)
        backward = corr.permute(0, 4, 5, 3, 1, 2).reshape(batch * height * width, 1, height, width)
        self.pyramids: list[list[torch.Tensor]] = [[forward], [backward]]
        for _ in range(levels - 1):
            for pyramid in self.pyramids:
                pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))

    def __call__(self, coords0: torch.Tensor, coords1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.radius
        offsets = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
        # RAFT's offset grid: the first coordinate (x) varies along the window's rows.
        delta = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        batch, _, height, width = coords0.shape
        outputs = []
        for pyramid, coords in zip(self.pyramids, (coords0, coords1), strict=True):
            centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
            levels = [_sample(volume, centres / 2**level + delta).view(batch, height, width, -1) for level, volume in enumerate(pyramid)]
            outputs.append(torch.cat(levels, dim=-1).permute(0, 3, 1, 2).contiguous().float())
        return outputs[0], outputs[1]


def _coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([xs, ys], dim=0).float()[None].repeat(batch, 1, 1, 1)


class AmtS(nn.Module):
    """AMT-S (``networks/AMT-S.py``: corr radius 3, 4 levels, 3 flows, channels 20/32/44/56, skip 20).

    ``forward(img0, img1, embt)`` takes images ``[B, 3, H, W]`` in [0, 1] (H, W multiples of 16) and the
    time ``embt`` ``[B, 1, 1, 1]`` (0.5: the middle) and returns the interpolated images, clamped to [0, 1].
    """

    def __init__(self, corr_radius: int = 3, corr_levels: int = 4, num_flows: int = 3) -> None:
        super().__init__()
        channels, skip = (20, 32, 44, 56), 20
        self.radius, self.corr_levels, self.num_flows = corr_radius, corr_levels, num_flows
        corr_planes = corr_levels * (2 * corr_radius + 1) ** 2
        self.feat_encoder = _FeatureEncoder(84)
        self.encoder = _Pyramid(channels)
        self.decoder4 = _InitDecoder(channels[3], channels[2], skip)
        self.decoder3 = _IntermediateDecoder(channels[2], channels[1], skip)
        self.decoder2 = _IntermediateDecoder(channels[1], channels[0], skip)
        self.decoder1 = _MultiFlowDecoder(channels[0], skip, num_flows)
        self.update4 = _UpdateBlock(44, None, corr_planes)
        self.update3 = _UpdateBlock(32, 2, corr_planes)
        self.update2 = _UpdateBlock(20, 4, corr_planes)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1), nn.PReLU(6 * num_flows), nn.Conv2d(6 * num_flows, 3, 3, 1, 1)
        )

    @staticmethod
    def _lookup(corr: _BidirectionalCorrelation, coord: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor, embt: torch.Tensor, downsample: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Linear motion: the flow from t to 1 scaled by 1/t reaches frame 1 from frame 0, and vice versa.
        if downsample != 1:
            flow0 = (1 / downsample) * _resize(flow0, 1 / downsample)
            flow1 = (1 / downsample) * _resize(flow1, 1 / downsample)
        corr0, corr1 = corr(coord + flow1 * (1.0 / embt), coord + flow0 * (1.0 / (1.0 - embt)))
        return torch.cat([corr0, corr1], 1), torch.cat([flow0, flow1], 1)

    def _refine(self, update: _UpdateBlock, corr: _BidirectionalCorrelation, coord: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor, ft: torch.Tensor, embt: torch.Tensor, downsample: int) -> tuple[torch.Tensor, ...]:
        volume, flows = self._lookup(corr, coord, flow0, flow1, embt, downsample)
        delta_ft, delta_flow = update(ft, flows, volume.to(ft.dtype))
        delta0, delta1 = torch.chunk(delta_flow, 2, 1)
        return flow0 + delta0, flow1 + delta1, ft + delta_ft

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor) -> torch.Tensor:
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        batch, _, height, width = img0.shape
        coord = _coords_grid(batch, height // 8, width // 8, img0.device)
        fmap0, fmap1 = torch.split(self.feat_encoder(torch.cat([img0, img1], 0)), [batch, batch], dim=0)
        corr = _BidirectionalCorrelation(fmap0, fmap1, self.corr_levels, self.radius)
        f0 = self.encoder(img0)
        f1 = self.encoder(img1)

        flow0, flow1, ft = self.decoder4(f0[3], f1[3], embt)
        flow0, flow1, ft = self._refine(self.update4, corr, coord, flow0, flow1, ft, embt, 1)
        flow0, flow1, ft = self.decoder3(ft, f0[2], f1[2], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update3, corr, coord, flow0, flow1, ft, embt, 2)
        flow0, flow1, ft = self.decoder2(ft, f0[1], f1[1], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update2, corr, coord, flow0, flow1, ft, embt, 4)
        flow0, flow1, mask, residual = self.decoder1(ft, f0[0], f1[0], flow0, flow1)
        return self._combine(img0, img1, flow0, flow1, mask, residual, mean).clamp(0, 1)

    def _combine(self, img0: torch.Tensor, img1: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Warp both images by each of the ``num_flows`` flow pairs, blend by the masks, add the residuals
        and the mean, then average the candidates and add the combination block's correction."""
        batch, _, height, width = flow0.shape
        n = self.num_flows

        def per_flow(x: torch.Tensor, channels: int) -> torch.Tensor:
            return x.reshape(batch, n, channels, height, width).reshape(-1, channels, height, width)

        def repeat(x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x] * n, 1).reshape(-1, *x.shape[1:])

        warped0 = _warp(repeat(img0), per_flow(flow0, 2))
        warped1 = _warp(repeat(img1), per_flow(flow1, 2))
        weights = per_flow(mask, 1)
        candidates = weights * warped0 + (1 - weights) * warped1 + repeat(mean) + per_flow(residual, 3)
        candidates = candidates.reshape(batch, n, 3, height, width)
        return candidates.mean(1) + self.comb_block(candidates.view(batch, -1, height, width))


def load_amt_s(path: Path) -> AmtS:
    """AMT-S from an official checkpoint (``{"state_dict": ...}`` as ``amt-s.pth``, or a bare state dict),
    loaded strictly (eval, frozen)."""
    state = load_state_dict(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    model = AmtS()
    load_strict(model, state, str(path))
    return model.eval().requires_grad_(False)


def interpolation_score(real: torch.Tensor, interpolated: torch.Tensor) -> tuple[float, float]:
    """VBench's ``vfi_score`` and score for uint8 frames ``[N, H, W, 3]`` (or any layout, same for both):
    the mean absolute difference per frame, averaged over frames, and ``(255 - that) / 255``."""
    if real.shape != interpolated.shape or real.dtype != torch.uint8 or interpolated.dtype != torch.uint8:
        raise ValueError(f"need two uint8 tensors of one shape, got {real.dtype} {tuple(real.shape)} and {interpolated.dtype} {tuple(interpolated.shape)}")
    per_frame = (real.int() - interpolated.int()).abs().flatten(1).double().mean(dim=1)
    difference = float(per_frame.mean())
    return difference, (255.0 - difference) / 255.0


class MotionSmoothness(VideoScorer):
    """VBench motion_smoothness: how well AMT-S predicts each odd frame from its even neighbours (1 =
    perfectly predictable motion). Output ``mean_abs_diff``: the mean 0-255 difference it rests on.

    ``interpolator(frames0, frames1, embt)`` is AMT-S (or any module with that signature)."""

    needs_prompt = False
    max_prompt_tokens = None
    output_names = ("mean_abs_diff",)

    def __init__(self, interpolator: nn.Module) -> None:
        super().__init__()
        self.interpolator = interpolator
        self.sampler = All()
        self.weights_sha256: str | None = None

    @torch.no_grad()
    def interpolate_middles(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N - 1, 3, H, W]``: the middle of each consecutive pair of uint8 frames ``[N, 3, H, W]``."""
        height, width = frames.shape[-2:]
        pad_h, pad_w = (-height) % 16, (-width) % 16
        if min(height + pad_h, width + pad_w) < 128:
            # The 4th correlation level is 1/64 of the frame; at one pixel AMT's lookup divides by zero.
            raise ValueError(f"AMT-S needs frames of at least 113 x 113 pixels (128 once padded to 16), got {height} x {width}")
        padding = [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]
        parameter = next(self.interpolator.parameters(), None)
        device = parameter.device if parameter is not None else frames.device
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        middles = []
        for start in range(0, len(frames) - 1, PAIRS_PER_FORWARD):
            stop = min(start + PAIRS_PER_FORWARD, len(frames) - 1)
            pair = [F.pad(frames[a:b].to(device).float() / 255.0, padding, mode="replicate").to(dtype) for a, b in ((start, stop), (start + 1, stop + 1))]
            embt = torch.full((stop - start, 1, 1, 1), 0.5, device=device, dtype=dtype)
            predicted = self.interpolator(pair[0], pair[1], embt).float()
            predicted = predicted[..., padding[2] : padding[2] + height, padding[0] : padding[0] + width]
            # VBench's tensor2img: (x * 255).clip(0, 255).astype(uint8), a truncation.
            middles.append((predicted * 255.0).clamp(0, 255).to(torch.uint8).cpu())
        return torch.cat(middles)

    def score_sampled_details(
        self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None
    ) -> dict[str, torch.Tensor]:
        videos = as_float_videos(frames, keep_uint8=True)
        if videos.dtype != torch.uint8:  # float [0, 1]: the 8-bit frames a video file would hold
            videos = (videos.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        if videos.shape[1] < 3:
            raise ValueError(f"motion_smoothness interpolates odd frames from even ones and needs at least 3 frames, got {videos.shape[1]}")
        rows = []
        for video in videos:
            middles = self.interpolate_middles(video[0::2])
            real = video[1::2][: len(middles)].cpu()
            rows.append(interpolation_score(real, middles)[::-1])
        table = torch.tensor(rows, dtype=torch.float64).to(torch.float32)
        return {"score": table[:, 0], "mean_abs_diff": table[:, 1]}


@register_reward(
    "motion_smoothness",
    modality="video",
    needs_prompt=False,
    differentiable=False,
    score_range=(0.0, 1.0),
    weights={"model": AMT_S_WEIGHTS},
    description="VBench motion smoothness: AMT-S frame interpolation of odd frames from even ones",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_motion_smoothness(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> MotionSmoothness:
    """VBench's motion_smoothness; ``weights`` is AMT-S's ``amt-s.pth``."""
    return build_with_weights(
        "motion_smoothness", weights, {}, lambda paths: MotionSmoothness(load_amt_s(paths["model"]).to(device=device, dtype=dtype))
    )

