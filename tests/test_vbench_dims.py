"""Model-based VBench dimensions (rewardkit.rewards.raft, .dino, .clip, .aesthetic) on tiny random-weight checkpoints in the official
layouts, loaded through ``create_reward(name, weights=PATH)``.

References: VBench's loops written out below (vbench/subject_consistency.py, background_consistency.py,
dynamic_degree.py, aesthetic_quality.py) with its torchvision transforms (vbench/utils.py), hand-computed
values, and the official RAFT key list (179 keys, read from princeton-vl RAFT's modules).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from rewardkit import create_reward
from rewardkit.rewards.consistency import consistency_scores
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.raft import map_raft_keys
from rewardkit.testing.clip import write_aesthetic_head, write_open_clip_config, write_open_clip_safetensors
from rewardkit.testing.vbench import (
    moving_square_clip,
    static_clip,
    to_video_tensor,
    write_dino_checkpoint,
    write_raft_checkpoint,
)
from rewardkit.weights import WeightsMismatchError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vbench")
    config = write_open_clip_config(folder)
    return {
        "raft": str(write_raft_checkpoint(folder / "raft-things.pth")),
        "dino": str(write_dino_checkpoint(folder / "dino_vitbase16_pretrain.pth")),
        "clip_config": str(config),
        "clip": str(write_open_clip_safetensors(folder / "open_clip_model.safetensors", str(config))),
        "head": str(write_aesthetic_head(folder / "sa_0_4_vit_l_14_linear.pth", "vbench", embed_dim=32)),
    }


def vbench_consistency_loop(features: torch.Tensor) -> float:
    """The per-video loop of vbench/subject_consistency.py on features [T, D]."""
    features = F.normalize(features, dim=-1, p=2)
    video_sim = 0.0
    for i in range(1, len(features)):
        sim_pre = max(0.0, F.cosine_similarity(features[i - 1 : i], features[i : i + 1]).item())
        sim_fir = max(0.0, F.cosine_similarity(features[:1], features[i : i + 1]).item())
        video_sim += (sim_pre + sim_fir) / 2
    return video_sim / (len(features) - 1)


def test_consistency_formula_by_hand():
    # f0=(1,0), f1=(1,1)/sqrt2, f2=(0,1): pair 1 (cos .7071 + .7071)/2, pair 2 (.7071 + 0)/2 -> mean .5303
    features = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    assert consistency_scores(features).item() == pytest.approx((math.sqrt(0.5) + math.sqrt(0.5) / 2) / 2, abs=1e-6)
    # negative cosines are clipped to 0: f2 = -f0 contributes nothing against the first frame
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    assert consistency_scores(features).item() == pytest.approx(0.0, abs=1e-7)
    random = torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(0))
    assert consistency_scores(random).item() == pytest.approx(vbench_consistency_loop(random[0]), abs=1e-6)


def test_subject_consistency_equals_vbench_loop(files):
    """dino_transform (Resize(224, antialias=False) on float 0..255 frames, /255, ImageNet norm) + DINO CLS
    features + VBench's loop; non-square 40x56 frames exercise DINO's position-embedding interpolation."""
    metric = create_reward("subject_consistency", weights=files["dino"])
    clip = moving_square_clip(4, height=40, width=56, speed=3, size=12)
    video = to_video_tensor(clip)
    transform = transforms.Compose([
        transforms.Resize(size=224, antialias=False),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    frames = transform(torch.Tensor(clip).permute(0, 3, 1, 2))
    assert frames.shape[-2:] == (224, 313)
    with torch.no_grad():
        features = torch.cat([metric.encoder(frame[None]) for frame in frames])
    assert metric(video).item() == pytest.approx(vbench_consistency_loop(features), abs=1e-5)
    assert metric(to_video_tensor(static_clip(3, 32, 32))).item() == pytest.approx(1.0, abs=1e-5)
    assert metric.weights_sha256 and len(metric.weights_sha256) == 64


def test_subject_consistency_gradients_reach_pixels(files):
    metric = create_reward("subject_consistency", weights=files["dino"])
    pixels = (to_video_tensor(moving_square_clip(3, 32, 32, speed=4, size=10)).float() / 255).requires_grad_(True)
    metric(pixels).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_dino_checkpoint_is_checked(tmp_path, files):
    state = torch.load(files["dino"], weights_only=True)
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.bias", "norm.weight"} <= set(state)
    del state["norm.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsMismatchError, match="norm.bias"):
        create_reward("subject_consistency", weights=str(tmp_path / "broken.pth"))


def test_background_consistency_equals_vbench_loop(files):
    """clip_transform (Resize(224, bicubic, antialias=False), CenterCrop(224), /255, CLIP norm) + encode_image."""
    metric = create_reward("background_consistency", architecture=files["clip_config"], weights=files["clip"])
    clip = moving_square_clip(3, height=48, width=64, speed=4, size=16)
    transform = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    with torch.no_grad():
        features = metric.encoder(transform(torch.Tensor(clip).permute(0, 3, 1, 2)))
    assert metric(to_video_tensor(clip)).item() == pytest.approx(vbench_consistency_loop(features), abs=1e-5)


def test_aesthetic_quality_is_the_frame_mean_of_aesthetic_vbench(files):
    """vbench/aesthetic_quality.py: per frame linear(normalize(CLIP)) / 10, mean over every frame."""
    options = {"architecture": files["clip_config"], "weights": {"head": files["head"], "backbone": files["clip"]}}
    metric = create_reward("aesthetic_quality", **options)
    per_frame = create_reward("aesthetic", head="vbench", **options)
    clip = moving_square_clip(3, height=40, width=40, speed=3, size=12)
    expected = per_frame(torch.from_numpy(clip).permute(0, 3, 1, 2)).mean().item()
    assert metric(to_video_tensor(clip)).item() == pytest.approx(expected, abs=1e-6)


def test_raft_checkpoint_layout_and_strict_map(files):
    state = torch.load(files["raft"], weights_only=True)
    assert len(state) == 179 and all(key.startswith("module.") for key in state)
    mapped = map_raft_keys(state)
    assert len(mapped) == 179 - 10  # the context encoder's duplicated norm3 (2 blocks x 5 tensors) drops
    broken = dict(state)
    broken["module.cnet.layer2.0.norm3.weight"] = broken["module.cnet.layer2.0.norm3.weight"] + 1
    with pytest.raises(WeightsMismatchError, match="norm3"):
        map_raft_keys(broken)
    with pytest.raises(WeightsMismatchError, match="unexpected key"):
        map_raft_keys({**state, "module.extra.weight": torch.zeros(1)})


def vbench_raft_statistic(raft, frame1, frame2, fraction):
    """VBench: InputPadder('sintel') replicate pad to /8, RAFT 20 iters on 0..255 (torchvision: [-1, 1]),
    np.sort-based top fraction over the padded flow."""
    height, width = frame1.shape[-2:]
    pad_h, pad_w = (((height // 8) + 1) * 8 - height) % 8, (((width // 8) + 1) * 8 - width) % 8
    pad = [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]
    a, b = (F.pad(x[None], pad, mode="replicate") / 255 * 2 - 1 for x in (frame1, frame2))
    with torch.no_grad():
        flow = raft(a, b, num_flow_updates=20)[-1][0].permute(1, 2, 0).numpy()
    rad = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1]))
    return float(np.mean(abs(np.sort(-rad.flatten()))[: int(rad.size * fraction)]))


@pytest.mark.slow  # full-size RAFT, 20 iterations, 4 flow fields at 136 px: about a minute on 2 busy cores
@pytest.mark.timeout(240)
def test_dynamic_degree_raft_equals_vbench_computation(files):
    """One 3-frame 130x132 video (padded to 136x136): statistic and decision against VBench's steps."""
    metric = create_reward("dynamic_degree", weights=files["raft"])
    clip = moving_square_clip(3, height=130, width=132, speed=5, size=40)
    details = metric.score_sampled_details(to_video_tensor(clip), None, 3)
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float()
    stats = [vbench_raft_statistic(metric.raft.raft, frames[i], frames[i + 1], 0.05) for i in range(2)]
    thres, count_num = 6 * 130 / 256, round(4 * 3 / 16)
    assert details["flow_top5"].item() == pytest.approx(np.mean(stats), rel=1e-4)
    assert details["score"].item() == float(sum(s > thres for s in stats) >= count_num)
    assert details["threshold"].item() == pytest.approx(thres) and details["required_pairs"].item() == count_num


@pytest.mark.slow  # full-size RAFT, 20 iterations, 8 flow fields at 128 px
@pytest.mark.timeout(240)
def test_temporal_flickering_with_raft_static_filter(files):
    """The RAFT filter's decision equals VBench's check_static on the same RAFT statistics (consecutive
    pairs, then first->last and last->first); the flicker score is unchanged for a static verdict."""
    metric = create_reward("temporal_flickering", static_filter="raft", weights=files["raft"])
    clip = static_clip(3, 128, 128)
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float()
    raft = metric.static_filter.raft.raft
    stats = [vbench_raft_statistic(raft, frames[a], frames[b], 0.02) for a, b in ((0, 1), (1, 2), (0, 2), (2, 0))]
    thres, count_num = 3 * 128 / 256, round(2 * 3 / 16)
    static = sum(s > thres for s in stats[:2]) <= count_num and all(s <= thres * count_num * 2 for s in stats[2:])
    if static:
        assert metric(to_video_tensor(clip)).item() == pytest.approx(1.0)
    else:
        with pytest.raises(NotApplicable):
            metric(to_video_tensor(clip))
