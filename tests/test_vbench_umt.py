"""VBench human_action with UMT (rewardkit.rewards.umt), on tiny random checkpoints in the published layout.

Independent references: the size of the published checkpoint (the Hub lists 607 MB for a float16 file:
303,484,304 parameters, the count the full-size model must have) and key shapes read from UMT's
``modeling_finetune.py``; UMT's forward pass written out below from that file (its position table as the
Python loop of ``get_sinusoid_encoding_table`` plus a hand-written linear stretch in time); VBench's transform
worked out by hand (sizes, half-to-even crop offsets, normalised values of constant frames); a head whose
logits do not depend on the video, so the top-5 verdicts and probabilities are hand values. The parity run
against VBench's own code is tests/parity/test_umt_parity.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rewardkit import create_reward
from rewardkit.errors import UserInputError
from rewardkit.eval.vbench_info import VBENCH_COMMIT
from rewardkit.rewards.umt import (
    KINETICS_CLASSES_FILE,
    UMT_WEIGHTS,
    UmtClassifier,
    load_kinetics_classes,
    load_umt,
    sinusoid_positions,
    vbench_umt_transform,
)
from rewardkit.rewards.viclip import VBenchMiddleFrames
from rewardkit.testing.umt import write_kinetics_classes, write_umt_checkpoint
from rewardkit.weights import MissingWeightsError, WeightsMismatchError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_official_parameter_layout():
    """The full-size model has exactly the parameters of the Hub's float16 file (607 MB) and the shapes of
    UMT's modeling_finetune.py for vit_large_patch16_224 with all_frames=16, tubelet_size=1, 400 classes."""
    with torch.device("meta"):
        state = UmtClassifier().state_dict()
    count = sum(value.numel() for value in state.values())
    assert len(state) == 318 and count == 303_484_304 and round(2 * count / 1e6) == UMT_WEIGHTS.size / 1e6 == 607
    expected = {
        "patch_embed.proj.weight": (1024, 3, 1, 16, 16),
        "blocks.23.attn.qkv.weight": (3072, 1024),  # no bias: q_bias and v_bias instead
        "blocks.0.attn.q_bias": (1024,),
        "blocks.0.attn.v_bias": (1024,),
        "blocks.0.mlp.fc1.weight": (4096, 1024),
        "fc_norm.weight": (1024,),
        "head.weight": (400, 1024),
    }
    assert {key: tuple(state[key].shape) for key in expected} == expected
    assert "pos_embed" not in state and "blocks.24.norm1.weight" not in state and "norm.weight" not in state


def vbench_table(width: int) -> np.ndarray:
    """get_sinusoid_encoding_table's 8-frame table (before any stretch), its Python loop as written there."""
    def angles(position):
        return [position / np.power(10000, 2 * (j // 2) / width) for j in range(width)]

    table = np.array([angles(position) for position in range(8 * 196)])
    table[:, 0::2], table[:, 1::2] = np.sin(table[:, 0::2]), np.cos(table[:, 1::2])
    return table.astype(np.float32).reshape(8, 196, width)


def stretch_by_hand(table: np.ndarray, frames: int = 16) -> np.ndarray:
    """Linear resampling in time with half-pixel centres (align_corners=False): output frame t reads source
    position max(0, (t + 0.5) * 8 / frames - 0.5) between its two neighbours."""
    out = []
    for t in range(frames):
        source = max(0.0, (t + 0.5) * len(table) / frames - 0.5)
        low = int(math.floor(source))
        high, weight = min(low + 1, len(table) - 1), source - low
        out.append((1 - weight) * table[low] + weight * table[high])
    return np.stack(out).reshape(1, frames * 196, -1)


def test_positions_by_hand():
    width = 64
    table = vbench_table(width)
    # position p, channel 0 is sin(p), channel 1 cos(p), channel 2 sin(p / 10000^(2/64))
    assert table[1, 5, 0] == pytest.approx(math.sin(201)) and table[1, 5, 1] == pytest.approx(math.cos(201))
    assert table[0, 3, 2] == pytest.approx(math.sin(3 / 10000 ** (2 / 64)))
    ours = sinusoid_positions(width).numpy()
    assert ours.shape == (1, 16 * 196, width)
    np.testing.assert_allclose(ours, stretch_by_hand(table), atol=1e-6)
    # frame 1 of 16 is 0.75 of frame 0 plus 0.25 of frame 1 of 8; frame 15 is frame 7
    np.testing.assert_allclose(ours[0, 196:392], 0.75 * table[0] + 0.25 * table[1], atol=1e-6)
    np.testing.assert_allclose(ours[0, -196:], table[7], atol=1e-6)


def test_transform_by_hand():
    """Constant frames stay constant through the resize, so every value is (c / 255 - mean) / std; a
    column-numbered frame with its short side already 256 shows where the crop starts."""
    clip = vbench_umt_transform(np.full((3, 96, 128, 3), 100, dtype=np.uint8))
    assert clip.shape == (3, 3, 224, 224) and clip.dtype == torch.float32
    for channel in range(3):
        assert torch.allclose(clip[channel], torch.tensor((100 / 255 - MEAN[channel]) / STD[channel]), atol=1e-6)
    columns = np.broadcast_to((np.arange(331) % 256).astype(np.uint8)[None, :, None], (256, 331, 3))
    rows = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None, None], (256, 331, 3))
    frames = np.stack([columns, rows]).copy()
    out = vbench_umt_transform(frames) * torch.tensor(STD)[:, None, None, None] + torch.tensor(MEAN)[:, None, None, None]
    pixels = (out * 255).round()
    # width 331: (331 - 224) / 2 = 53.5, which Python's round() takes to 54 (half to even); height 256: row 16
    assert pixels[0, 0, 0, 0] == 54 and pixels[0, 0, 0, -1] == (54 + 223) % 256 and pixels[0, 1, 0, 0] == 16


@pytest.mark.parametrize(("height", "width", "resized", "offset"), [(96, 128, (256, 341), (16, 58)), (300, 200, (384, 256), (80, 16))])
def test_resize_sizes_and_offsets(monkeypatch, height, width, resized, offset):
    """Short side to 256, the long side int(256 * long / short) (341.33 -> 341, 384); crop offsets
    round((size - 224) / 2) with 58.5 -> 58. Observed by recording what reaches OpenCV and cropping a
    frame that numbers its pixels."""
    import cv2

    from rewardkit.rewards import umt

    seen = []

    def resize(frame, size, interpolation):
        seen.append((size, interpolation))
        ramp = np.arange(size[0] * size[1]).reshape(size[1], size[0]) % 251
        return np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)

    monkeypatch.setattr(umt, "cv2", type("cv2", (), {"resize": staticmethod(resize), "INTER_LINEAR": cv2.INTER_LINEAR}))
    out = vbench_umt_transform(np.zeros((1, height, width, 3), dtype=np.uint8))
    assert seen == [((resized[1], resized[0]), cv2.INTER_LINEAR)]
    first = round(float(out[0, 0, 0, 0] * STD[0] + MEAN[0]) * 255)
    assert first == (offset[0] * resized[1] + offset[1]) % 251


def test_kinetics_classes_in_index_order(tmp_path):
    """VBench's file lists ``name<TAB>index``; the index, not the line order, places a class; lower case."""
    (tmp_path / "k.txt").write_text("Riding a bike\t1\nmarching\t0\n")
    assert load_kinetics_classes(tmp_path / "k.txt") == ("marching", "riding a bike")
    (tmp_path / "gap.txt").write_text("a\t0\nb\t2\n")
    with pytest.raises(UserInputError, match="without gaps"):
        load_kinetics_classes(tmp_path / "gap.txt")
    (tmp_path / "bad.txt").write_text("a 0\n")
    with pytest.raises(UserInputError, match="line 1"):
        load_kinetics_classes(tmp_path / "bad.txt")


def umt_written_out(state: dict, video: torch.Tensor) -> torch.Tensor:
    """modeling_finetune.VisionTransformer.forward (eval, mean pooling) from the state dict: Conv3d patches,
    + positions, blocks (qkv with the bias cat(q_bias, 0, v_bias), q scaled by head_dim^-0.5, softmax,
    exact GELU MLP, LayerNorm eps 1e-6), mean over tokens, fc_norm, head."""
    s = {key: value.float() for key, value in state.items()}
    width = s["patch_embed.proj.weight"].shape[0]
    heads = width // 64
    x = F.conv3d(video, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=(1, 16, 16))
    x = x.flatten(2).transpose(1, 2) + torch.from_numpy(stretch_by_hand(vbench_table(width))).float()
    batch, tokens, _ = x.shape
    for block in range(len({key.split(".")[1] for key in s if key.startswith("blocks.")})):
        p = f"blocks.{block}."
        h = F.layer_norm(x, (width,), s[p + "norm1.weight"], s[p + "norm1.bias"], eps=1e-6)
        bias = torch.cat([s[p + "attn.q_bias"], torch.zeros(width), s[p + "attn.v_bias"]])
        q, k, v = (h @ s[p + "attn.qkv.weight"].T + bias).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
        attention = ((q * (width // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + (attention @ v).transpose(1, 2).reshape(batch, tokens, width) @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        h = F.layer_norm(x, (width,), s[p + "norm2.weight"], s[p + "norm2.bias"], eps=1e-6)
        x = x + F.gelu(h @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]) @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]
    pooled = F.layer_norm(x.mean(1), (width,), s["fc_norm.weight"], s["fc_norm.bias"], eps=1e-6)
    return pooled @ s["head.weight"].T + s["head.bias"]


def test_forward_equals_umt_written_out(tmp_path):
    """128 wide (2 heads), from the float16 file; probabilities within 1e-5."""
    path = write_umt_checkpoint(tmp_path / "umt.pth", width=128, depth=1)
    state = torch.load(path, weights_only=True)
    assert all(value.dtype == torch.float16 for value in state.values()) and "pos_embed" not in state
    video = torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(0))
    ours, reference = load_umt(path)(video), umt_written_out(state, video)
    assert torch.allclose(ours, reference, atol=1e-4)
    assert (ours.sigmoid() - reference.sigmoid()).abs().max() <= 1e-5


def test_loading_is_strict(tmp_path):
    path = write_umt_checkpoint(tmp_path / "umt.pth")
    state = torch.load(path, weights_only=True)
    for name, broken in (("missing", {k: v for k, v in state.items() if k != "blocks.0.attn.q_bias"}),
                         ("unexpected", {**state, "norm.weight": torch.ones(64)})):
        torch.save(broken, tmp_path / f"{name}.pth")
        with pytest.raises(WeightsMismatchError, match=name):
            load_umt(tmp_path / f"{name}.pth")
    torch.save({"model": state}, tmp_path / "wrapped.pth")
    with pytest.raises(WeightsMismatchError, match="not a UMT checkpoint"):
        load_umt(tmp_path / "wrapped.pth")
    torch.save({**state, "pos_embed": torch.zeros(1, 10, 64)}, tmp_path / "short.pth")
    with pytest.raises(WeightsMismatchError, match="pos_embed has shape"):
        load_umt(tmp_path / "short.pth")
    # a checkpoint's own positions replace the fixed table (as VBench's strict=False load would)
    own = write_umt_checkpoint(tmp_path / "own.pth", pos_embed=True)
    assert torch.equal(load_umt(own).pos_embed, torch.load(own, weights_only=True)["pos_embed"].float())
    assert torch.equal(load_umt(path).pos_embed, sinusoid_positions(64))


@pytest.fixture
def fixed_head(tmp_path):
    """A UMT whose head ignores the video (zero weights): logits are its biases, 4 for "Riding a bike"
    (class 3), 2 for "marching" (7), 1 for "dancing" (9), -6 for every other class."""
    path = write_umt_checkpoint(tmp_path / "umt.pth", depth=1)
    state = torch.load(path, weights_only=True)
    state["head.weight"].zero_()
    state["head.bias"].fill_(-6.0)
    for index, logit in ((3, 4.0), (7, 2.0), (9, 1.0)):
        state["head.bias"][index] = logit
    torch.save(state, path)
    names = [f"action {index}" for index in range(400)]
    names[3], names[7], names[9] = "Riding a bike", "marching", "dancing"
    return {"model": str(path), "classes": str(write_kinetics_classes(tmp_path / "k.txt", names))}


def test_top5_rule_through_the_reward(fixed_head):
    """sigmoid(4) = 0.982014 and sigmoid(2) = 0.880797 clear 0.85; sigmoid(1) = 0.731059 is in the top 5 but
    under it; a prompt naming no class is wrong (with a warning) and has label probability 0."""
    reward = create_reward("human_action", weights=fixed_head)
    assert reward.sampler == VBenchMiddleFrames(16)
    videos = torch.randint(0, 256, (4, 16, 3, 32, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompts = ["A person is riding a bike", "A person is marching", "A person is dancing", "a cat"]
    with pytest.warns(UserWarning, match="'a cat'.*not a Kinetics-400 class"):
        details = reward.score_sampled_details(videos, None, 16, prompts)
    assert details["score"].tolist() == [1.0, 1.0, 0.0, 0.0]
    expected = [1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1)), 0.0]
    assert details["label_probability"].tolist() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="16 frames"):
        reward.class_probabilities(videos[:, :8])


def test_files_are_pinned_and_both_reported_missing(tmp_path, monkeypatch):
    """The model from the Hub repo VBench downloads it from, the class list from VBench's repository at the
    commit the prompt lists come from, both with sha256; offline, one error names both files."""
    assert (UMT_WEIGHTS.repo, UMT_WEIGHTS.filename) == ("OpenGVLab/VBench_Used_Models", "l16_ptk710_ftk710_ftk400_f16_res224.pth")
    assert len(UMT_WEIGHTS.sha256) == len(KINETICS_CLASSES_FILE.sha256) == 64
    assert VBENCH_COMMIT in KINETICS_CLASSES_FILE.url and KINETICS_CLASSES_FILE.url.endswith("/umt/kinetics_400_categories.txt")
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError) as raised:
        create_reward("human_action")
    message = str(raised.value)
    for expected in ("l16_ptk710_ftk710_ftk400_f16_res224.pth", "kinetics_400_categories.txt", "rewardkit download human_action"):
        assert expected in message


def test_class_count_must_match_the_head(tmp_path):
    weights = {"model": str(write_umt_checkpoint(tmp_path / "umt.pth", depth=1)), "classes": str(write_kinetics_classes(tmp_path / "k.txt", 10))}
    with pytest.raises(WeightsMismatchError, match="400 classes but the class list names 10"):
        create_reward("human_action", weights=weights)
