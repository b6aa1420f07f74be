"""MUSIQ and VBench ``imaging_quality`` (rewardkit.rewards.musiq) on tiny random-weight checkpoints in pyiqa's
layout, loaded through ``create_reward("imaging_quality", weights=PATH)``.

References: pyiqa's key names and shapes (rewardkit.testing.musiq, written out from pyiqa/archs/musiq_arch.py),
hand-built patch grids for pyiqa's ``get_multiscale_patches`` (TF "SAME" padding, hashed positions, scale
ids, padding masks), VBench's ``transform`` and per-frame loop written out below (vbench/imaging_quality.py).
The model itself was compared once with pyiqa 0.1.16 outside the repository (see the module docstring of
rewardkit.rewards.musiq and the issue note).
"""

import numpy as np
import pytest
import torch
from torchvision import transforms

from rewardkit import create_reward
from rewardkit.rewards.musiq import (
    MUSIQ_SPAQ_WEIGHTS,
    MultiScaleTokens,
    MusiqModel,
    hashed_positions,
    multiscale_patches,
    vbench_imaging_resize,
)
from rewardkit.testing.musiq import official_musiq_shapes, write_musiq_checkpoint
from rewardkit.weights import MissingWeightsError, WeightsMismatchError, cached_weight_path, sha256_of

TINY = {"hidden_size": 48, "mlp_dim": 64, "num_layers": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_musiq_checkpoint(tmp_path_factory.mktemp("musiq") / MUSIQ_SPAQ_WEIGHTS.filename, **TINY)


@pytest.fixture(scope="module")
def metric(checkpoint):
    return create_reward("imaging_quality", weights=str(checkpoint))


def vbench_transform(images: torch.Tensor, mode: str) -> torch.Tensor:
    """vbench/imaging_quality.py ``transform`` on uint8 frames [T, 3, H, W] (its modes, 'None' as 'none')."""
    _, _, h, w = images.size()
    if mode.startswith("shorter") and min(h, w) > 512:
        scale = 512.0 / min(h, w)
        images = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(images)
        if mode == "shorter_centercrop":
            images = transforms.CenterCrop(512)(images)
    elif mode == "longer" and max(h, w) > 512:
        scale = 512.0 / max(h, w)
        images = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(images)
    return images / 255.0


# -------------------------------------------------------------------------------------------- loading


def test_model_keys_and_shapes_are_pyiqa_s(metric):
    """Our module's state dict equals pyiqa's key list with its shapes: full-size SPAQ model and tiny one."""
    full = {key: tuple(value.shape) for key, value in MusiqModel().state_dict().items()}
    assert full == official_musiq_shapes()
    tiny = {key: tuple(value.shape) for key, value in metric.musiq.state_dict().items()}
    assert tiny == official_musiq_shapes(**TINY)
    assert len(full) == 3 + 12 + 2 + 5 + 14 * 16 + 2  # stem, bottleneck, embedding, encoder, 14 blocks, head


def test_loader_is_strict_and_accepts_the_usual_variants(tmp_path, checkpoint, metric):
    """A ``module.`` prefix (pyiqa strips it too) and a folder holding the file load the same weights; a
    missing key or a foreign checkpoint is a WeightsMismatchError."""
    prefixed = write_musiq_checkpoint(tmp_path / "prefixed" / MUSIQ_SPAQ_WEIGHTS.filename, prefix="module.", **TINY)
    for weights in (prefixed, checkpoint.parent):
        other = create_reward("imaging_quality", weights=str(weights))
        for key, value in metric.musiq.state_dict().items():
            assert torch.equal(other.musiq.state_dict()[key], value), key
    assert metric.weights_sha256 == sha256_of(checkpoint)

    state = torch.load(checkpoint, weights_only=True)
    del state["transformer_encoder.cls"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsMismatchError, match="transformer_encoder.cls"):
        create_reward("imaging_quality", weights=str(tmp_path / "missing.pth"))
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match="not a pyiqa MUSIQ checkpoint"):
        create_reward("imaging_quality", weights=str(tmp_path / "other.pth"))


def test_weights_come_from_the_rewardkit_cache_and_are_never_downloaded_offline(tmp_path, monkeypatch, checkpoint):
    """Offline (HF_HUB_OFFLINE=1, set by conftest) with an empty cache: the error names the file and the
    GitHub release URL; with the file at its cache path, no weights argument is needed."""
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError, match="musiq_spaq_ckpt-358bb6af.pth.*github.com/chaofengc/IQA-PyTorch/releases"):
        create_reward("imaging_quality")
    assert cached_weight_path(MUSIQ_SPAQ_WEIGHTS) is None
    target = tmp_path / "cache" / "downloads" / "github.com" / "chaofengc" / "IQA-PyTorch" / "releases" / "download"
    target = target / "v0.1-weights" / MUSIQ_SPAQ_WEIGHTS.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(checkpoint.read_bytes())
    assert cached_weight_path(MUSIQ_SPAQ_WEIGHTS) == target
    assert create_reward("imaging_quality").weights_sha256 == sha256_of(checkpoint)


# ------------------------------------------------------------------------------- multi-scale patches


def test_hashed_positions_by_hand():
    """A 2 x 3 patch grid on a 10 x 10 hash grid: rows -> cells 0, 5; columns -> 0, 3, 6 (floor(i * 10 / n));
    an 11-wide row repeats cell 9 at its end: floor(i * 10 / 11) = 0, 0, 1, ..., 9."""
    assert hashed_positions(10, 2, 3).tolist() == [0, 3, 6, 50, 53, 56]
    assert hashed_positions(10, 1, 11).tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert hashed_positions(10, 10, 10).tolist() == list(range(100))


def test_multiscale_patches_on_a_hand_built_image():
    """A 20 x 64 image, patch 32, longer sides (32, 64) + original resolution:
    - L=32: resized to round(20 * 0.5) x 32 = 10 x 32, SAME-padded by 11 rows above and below: 1 patch, limit 1;
    - L=64: the image itself (ratio 1), padded 6 rows above and 6 below: 1 x 2 patches, limit 4 -> 2 padding
      tokens (zeros, position 0, scale 0, mask 0);
    - original: the same 1 x 2 patches, scale 2, no limit."""
    image = torch.arange(20 * 64 * 3, dtype=torch.float32).view(1, 3, 20, 64) / 4000.0
    tokens = multiscale_patches(image, 32, 10, (64, 32), -1)
    assert tokens.patches.shape == (1, 7, 3 * 32 * 32)
    assert tokens.spatial.tolist() == [[0, 0, 5, 0, 0, 0, 5]]
    assert tokens.scale.tolist() == [[0, 1, 1, 0, 0, 2, 2]]
    assert tokens.mask.tolist() == [[True, True, True, False, False, True, True]]
    patches = tokens.patches[0].view(7, 3, 32, 32)
    expected = torch.zeros(2, 3, 32, 32)
    expected[0, :, 6:26] = image[0, :, :, :32]
    expected[1, :, 6:26] = image[0, :, :, 32:]
    assert torch.equal(patches[1:3], expected) and torch.equal(patches[5:7], expected)
    assert not patches[3:5].any()
    small = torch.nn.functional.interpolate(image, size=(10, 32), mode="bicubic", align_corners=False)
    assert torch.equal(patches[0, :, 11:21], small[0]) and not patches[0, :, :11].any() and not patches[0, :, 21:].any()

    cut = multiscale_patches(image, 32, 10, (64,), 1)  # original resolution limited to its first patch
    assert cut.scale.tolist() == [[0, 0, 0, 0, 1]] and torch.equal(cut.patches[0, 4], tokens.patches[0, 5])
    assert multiscale_patches(image, 32, 10, (64,), None).mask.shape == (1, 4)


def test_padding_tokens_do_not_change_the_score(metric):
    """Masked tokens only enter as masked attention pairs: appending 5 random padding tokens changes the
    CLS output by < 1e-5 (pyiqa's -1000 fill, not -inf)."""
    images = torch.rand(2, 3, 40, 70)
    with torch.no_grad():
        tokens = metric.musiq.tokens(images)
        extra = MultiScaleTokens(
            torch.randn(2, 5, tokens.patches.shape[-1]), torch.randint(0, 100, (2, 5)), torch.randint(0, 3, (2, 5)),
            torch.zeros(2, 5, dtype=torch.bool),
        )
        padded = MultiScaleTokens(*(torch.cat(pair, dim=1) for pair in zip(tokens, extra, strict=True)))
        assert torch.allclose(metric.musiq.score_tokens(padded), metric.musiq.score_tokens(tokens), atol=1e-5)


# ---------------------------------------------------------------------------------- VBench dimension


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("longer", (600, 530), (512, 452)),
        ("longer", (300, 700), (219, 512)),
        ("longer", (300, 512), (300, 512)),
        ("shorter", (600, 530), (579, 512)),
        ("shorter_centercrop", (600, 530), (512, 512)),
        ("shorter", (300, 700), (300, 700)),
        ("none", (600, 530), (600, 530)),
    ],
)
def test_vbench_resize_matches_vbench_transform(mode, size, expected):
    """vbench_imaging_resize on uint8 frames is VBench's ``transform`` exactly (torchvision Resize on the
    uint8 tensor, bilinear, antialias=False, so rounded to 8 bits); sizes by hand, e.g. int(512/600*530)=452."""
    frames = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = vbench_imaging_resize(frames, mode)
    assert tuple(ours.shape[-2:]) == expected
    assert torch.equal(ours, vbench_transform(frames, mode))


def test_imaging_quality_equals_vbench_loop(metric):
    """VBench's technical_quality: transform('longer'), model(frame) per frame, mean per video, / 100 (with our
    MUSIQ as the model); two videos in one batch score as each alone."""
    generator = torch.Generator().manual_seed(1)
    videos = torch.randint(0, 256, (2, 2, 3, 40, 600), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        scores = metric(videos)
        for video, score in zip(videos, scores, strict=True):
            images = vbench_transform(video, "longer")
            assert images.shape[-2:] == (34, 512)  # int(512 / 600 * 40)
            frame_scores = [float(metric.musiq(images[i].unsqueeze(0))) for i in range(len(images))]
            assert score.item() == pytest.approx(sum(frame_scores) / len(frame_scores) / 100.0, abs=1e-6)
    assert scores.dtype == torch.float32 and scores.shape == (2,)


def test_float_frames_are_differentiable_and_options_are_checked(checkpoint):
    """Float frames skip the 8-bit rounding so gradients reach every pixel; float frames equal to uint8/255
    that need no resize score as the uint8 ones; an unknown preprocessing mode is refused."""
    metric = create_reward("imaging_quality", weights=str(checkpoint), preprocessing="none")
    video = torch.randint(0, 256, (1, 2, 3, 40, 56), dtype=torch.uint8)
    pixels = (video.float() / 255).requires_grad_(True)
    score = metric(pixels)
    score.sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert score.item() == pytest.approx(metric(video).item(), abs=1e-6)
    with pytest.raises(ValueError, match="preprocessing"):
        create_reward("imaging_quality", weights=str(checkpoint), preprocessing="square")


def test_engine_scores_a_video_file(tmp_path, checkpoint, metric):
    """rewardkit.scoring.score on an mp4: one ok row over every frame, equal to the module on the decoded
    frames, with the checkpoint's sha256."""
    from rewardkit.scoring import score
    from rewardkit.video.io import read_frames, write_video

    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    write_video(path, np.repeat(rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8), 5, axis=0))
    results = score([str(path)], ["imaging_quality"], weights={"imaging_quality": str(checkpoint)}, workers=0, progress=False)
    assert list(results["status"]) == ["ok"], results["error"].tolist()
    row = results.iloc[0]
    frames = torch.from_numpy(read_frames(path)).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        assert row["score"] == pytest.approx(metric(frames).item(), abs=1e-6)
    assert row["n_frames"] == 5 and row["weights_sha256"] == sha256_of(checkpoint)
