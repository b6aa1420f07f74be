"""DOVER: sampling against hand-computed official values, strict loading of the official layout, the
reward contract (seeded randomness, gradients, engine columns).

The numeric parity of the model itself with the official code (same weights, same views) was measured
once outside the test suite (the official code is not a package); see the module docstring's sources.
Model tests use tiny random checkpoints written by ``rewardkit.testing.dover`` in the official layout.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rewardkit import create_reward
from rewardkit.registry import get_reward_info
from rewardkit.rewards.dover import (
    DOVER_CONFIG,
    MOBILE_CONFIG,
    UNUSED_KEYS,
    DoverModel,
    DoverReward,
    DoverSampler,
    DoverSampling,
    aesthetic_view,
    config_from_state_dict,
    draw_fragment_offsets,
    fragment_starts,
    fuse_scores,
    load_dover_model,
    technical_view,
)
from rewardkit.testing import put_in_hf_cache
from rewardkit.testing.dover import (
    TINY_DOVER,
    TINY_DOVER_MOBILE,
    pattern_video,
    random_dover_state_dict,
    write_dover_checkpoint,
)
from rewardkit.weights import MissingWeightsError, WeightsMismatchError

# For the tests that run the model many times: one clip of 32 frames (temporal windows of 8 with shift 4,
# as the official sampling), a 7x7 grid of 16-pixel fragments (112-pixel views; each fragment is 4x4
# tokens, as the window grid of the gated bias then assumes) and 8 aesthetic frames of 112 pixels.
SMALL = DoverSampling(fragment_size=16, num_clips=1, aesthetic_size=112, aesthetic_frames=8)
FIXTURE = Path(__file__).parent / "data" / "dover_official_state_dict.json"


class Scripted:
    """Stands in for a numpy Generator: ``integers`` returns prepared arrays in order and checks that the
    requested range is the one the official sampler would use."""

    def __init__(self, *draws: tuple[int, np.ndarray]) -> None:
        self.draws = deque(draws)

    def integers(self, low: int, high: int, size) -> np.ndarray:
        expected_high, values = self.draws.popleft()
        assert (low, high) == (0, expected_high)
        assert np.shape(values) == (size if isinstance(size, tuple) else (size,))
        return np.asarray(values)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dover")
    return {
        "dover": write_dover_checkpoint(root / "dover" / "DOVER.pth", TINY_DOVER, seed=0),
        "mobile": write_dover_checkpoint(root / "mobile" / "DOVER-Mobile.pth", TINY_DOVER_MOBILE, seed=1),
    }


@pytest.fixture(scope="module")
def model(checkpoints) -> DoverModel:
    return load_dover_model(checkpoints["dover"])


def small_reward(model: DoverModel, **options) -> DoverReward:
    return DoverReward(model, sampling=SMALL, **options)


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    """uint8 [1, 40, 3, 240, 320]."""
    return torch.from_numpy(pattern_video(40, 240, 320, seed=0)).permute(0, 3, 1, 2)[None]


# ---------------------------------------------------------------------------------------------- sampling


def test_frame_indices_equal_hand_computed_official_samples():
    """UnifiedFrameSampler(32, 3, 2) then UnifiedFrameSampler(1, 32, 2), worked out by hand."""
    sampler = DoverSampler()
    # 300 frames: technical segments of 100 start at 0, 100, 200 plus offsets in [0, 100 - 64);
    # aesthetic segments of 300 // 32 = 9 frames, offsets in [0, 9 - 2).
    aesthetic_offsets = np.arange(32) % 7
    rng = Scripted((36, np.array([5, 0, 35])), (7, aesthetic_offsets))
    indices = sampler.indices(300, rng)
    expected_technical = (
        [5 + 2 * j for j in range(32)] + [100 + 2 * j for j in range(32)] + [235 + 2 * j for j in range(32)]
    )
    expected_aesthetic = [9 * k + k % 7 for k in range(32)]
    assert indices == expected_technical + expected_aesthetic
    assert indices[95] == 297 and indices[96:99] == [0, 10, 20]

    # 50 frames: segments of 16 are shorter than a clip's 64-frame span, so no offset is drawn and the
    # indices loop modulo 50 (clip 2 starts at 32: 32, 34, ..., 48, 0, 2, ..., 44).
    indices = sampler.indices(50, Scripted())
    assert indices[:32] == [2 * j for j in range(25)] + [0, 2, 4, 6, 8, 10, 12]
    assert indices[32:64] == [(16 + 2 * j) % 50 for j in range(32)]
    assert indices[64:96] == [32 + 2 * j for j in range(9)] + [2 * j for j in range(23)]
    assert indices[96:] == list(range(32))  # 50 // 32 = 1-frame aesthetic segments: no offset

    # 20 frames: 20 // 32 = 0-frame aesthetic segments, so every aesthetic index is frame 0.
    assert sampler.indices(20, Scripted())[96:] == [0] * 32


def test_random_offsets_cover_exactly_the_official_ranges():
    """np.random.randint(0, L - span) draws 0..L-span-1: technical offsets with 210 frames (L = 70, span
    64) are 0..5; aesthetic ones (span 2) with 160 frames (L = 5) are 0..2, with 96 frames (L = 3) 0."""
    rng = np.random.default_rng(0)
    sampler = DoverSampler()
    starts = {tuple(np.array(sampler.indices(210, rng)[:96:32]) - [0, 70, 140]) for _ in range(300)}
    assert {value for start in starts for value in start} == set(range(6))
    aesthetic_160 = {value for _ in range(100) for value in np.array(sampler.indices(160, rng)[96:]) - 5 * np.arange(32)}
    assert aesthetic_160 == {0, 1, 2}
    assert DoverSampler(technical=False).indices(96, rng) == [3 * k for k in range(32)]


def test_sampler_is_reproducible_and_rejects_empty_videos():
    sampler = DoverSampler()
    assert sampler.indices(500) == sampler.indices(500)  # rng None: a generator seeded with `seed`
    assert sampler.indices(500, np.random.default_rng(1)) != sampler.indices(500, np.random.default_rng(2))
    assert sampler.counts == (96, 32) and DoverSampler(aesthetic=False).counts == (96, 0)
    with pytest.raises(ValueError, match="at least one frame"):
        sampler.indices(0)


def test_fragment_grid_starts_are_the_official_ones():
    """min(size // 7 * i, size - 32), by hand."""
    assert fragment_starts(256, 7, 32) == [0, 36, 72, 108, 144, 180, 216]
    assert fragment_starts(224, 7, 32) == [0, 32, 64, 96, 128, 160, 192]
    assert fragment_starts(120, 7, 32) == [0, 17, 34, 51, 68, 85, 88]  # clipped to 120 - 32


def test_fragment_offsets_are_drawn_per_cell_and_clip_inside_each_cell():
    """H = 256: cells of 36 rows, offsets in [0, 4); W = 224: cells of 32, no room, offsets 0."""
    offsets = draw_fragment_offsets(256, 224, 3, DoverSampling(), np.random.default_rng(0))
    assert offsets.shape == (2, 7, 7, 3)
    assert offsets[0].min() == 0 and offsets[0].max() == 3 and len(np.unique(offsets[0])) == 4
    assert not offsets[1].any()


def coordinate_frames(frames: int, height: int, width: int) -> torch.Tensor:
    """Float frames whose channels hold each pixel's row, column and frame number."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([y, x, t], dim=1).float()


def test_fragments_are_the_hand_built_grid():
    """Every pixel of the spliced view comes from (start + offset + position in the fragment) of the
    same frame, with one offset pair per cell and per chunk of clip_len frames."""
    sampling = DoverSampling(clip_len=2, num_clips=2)
    frames = coordinate_frames(4, 256, 300)
    rng = np.random.default_rng(5)
    offsets = draw_fragment_offsets(256, 300, 2, sampling, rng)
    view = technical_view(frames, offsets, sampling, exact=False)
    assert view.shape == (4, 3, 224, 224)
    rows, columns = fragment_starts(256, 7, 32), fragment_starts(300, 7, 32)
    assert columns == [0, 42, 84, 126, 168, 210, 252]
    for t in range(4):
        chunk = t // 2
        for i in range(7):
            for j in range(7):
                cell = view[t, :, 32 * i : 32 * (i + 1), 32 * j : 32 * (j + 1)]
                top = rows[i] + offsets[0, i, j, chunk]
                left = columns[j] + offsets[1, i, j, chunk]
                assert torch.equal(cell[0], (top + torch.arange(32.0))[:, None].expand(32, 32))
                assert torch.equal(cell[1], (left + torch.arange(32.0))[None, :].expand(32, 32))
                assert torch.equal(cell[2], torch.full((32, 32), float(t)))


def test_small_frames_are_upsampled_but_cut_with_the_original_grid():
    """The official fallback: frames 120x160 are upsampled by 224/120 (bilinear on x/255, truncated back
    to 8 bits) to 224x298, then cut at the grid of the 120x160 frame (starts 0, 17, ..., 88 and
    0, 22, ..., 128; cells of 17 and 22 pixels leave no room for random offsets)."""
    frames = torch.from_numpy(pattern_video(32, 120, 160, seed=1)).permute(0, 3, 1, 2)
    offsets = draw_fragment_offsets(120, 160, 1, DoverSampling(), np.random.default_rng(0))
    assert not offsets.any()
    view = technical_view(frames, offsets, DoverSampling(), exact=True)
    ratio = min(120 / 224, 160 / 224)
    upsampled = (F.interpolate(frames.float() / 255.0, scale_factor=1 / ratio, mode="bilinear") * 255.0).to(torch.uint8)
    assert upsampled.shape[-2:] == (224, 298)
    rows, columns = [0, 17, 34, 51, 68, 85, 88], [0, 22, 44, 66, 88, 110, 128]
    expected = torch.cat([torch.cat([upsampled[..., y : y + 32, x : x + 32] for x in columns], -1) for y in rows], -2)
    assert torch.equal(view, expected.float())


def test_aesthetic_view_resize_modes():
    """224x224 whatever the aspect ratio. Without antialiasing, the 8-bit path is torchvision 0.14's
    (float bilinear interpolation, rounded): within 0.5 of the float path; with antialiasing (torchvision's
    uint8 kernel) within 1 level of the float antialiased resize."""
    frames = torch.from_numpy(pattern_video(2, 270, 480, seed=2)).permute(0, 3, 1, 2)
    for antialias, tolerance in ((False, 0.5), (True, 1.0)):
        exact = aesthetic_view(frames, 224, antialias=antialias, exact=True)
        smooth = aesthetic_view(frames.float(), 224, antialias=antialias, exact=False)
        assert exact.shape == smooth.shape == (2, 3, 224, 224)
        assert torch.equal(exact, exact.round())
        assert (exact - smooth).abs().max() <= tolerance
    plain = aesthetic_view(frames.float(), 224, antialias=False, exact=False)
    assert (plain - smooth).abs().max() > 10  # antialiasing matters when shrinking 480 -> 224


def test_fused_score_is_the_official_formula():
    """sigmoid(0.6104 (t - 0.1107) / 0.07355 + 0.3896 (a + 0.08285) / 0.03774), by hand."""
    technical = torch.tensor([0.1107, 0.1107 + 0.07355, 0.0, 0.3])
    aesthetic = torch.tensor([-0.08285, -0.08285, 0.0, -0.1])
    logits = [0.0, 0.6104, 0.6104 * -0.1107 / 0.07355 + 0.3896 * 0.08285 / 0.03774,
              0.6104 * (0.3 - 0.1107) / 0.07355 + 0.3896 * (-0.1 + 0.08285) / 0.03774]
    expected = torch.tensor([1 / (1 + math.exp(-x)) for x in logits])
    assert torch.allclose(fuse_scores(technical, aesthetic), expected, atol=1e-6)
    assert fuse_scores(technical, aesthetic)[0] == 0.5


# ------------------------------------------------------------------------------------------------ loading


def test_tiny_checkpoints_load_strictly_through_create_reward(checkpoints):
    """The user path: create_reward(weights=file or folder) reads the sizes from the checkpoint and
    loads every key; the mobile file's unused ImageNet classifiers are dropped."""
    reward = create_reward("dover", weights=str(checkpoints["dover"]))
    assert reward.model.config == TINY_DOVER and reward.weights_sha256 and len(reward.weights_sha256) == 64
    saved = torch.load(checkpoints["dover"])
    assert all(torch.equal(saved[key], value) for key, value in reward.model.state_dict().items())
    mobile = create_reward("dover", variant="mobile", weights=str(checkpoints["mobile"].parent))
    assert mobile.model.config == TINY_DOVER_MOBILE
    assert all(key in torch.load(checkpoints["mobile"]) for key in UNUSED_KEYS)
    assert not set(UNUSED_KEYS) & set(mobile.model.state_dict())


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("aesthetic_backbone.stages.2.1.pwconv2.bias"), r"1 missing .*stages\.2\.1\.pwconv2\.bias"),
    (lambda sd: sd.update({"technical_head.extra": torch.zeros(1)}), r"1 unexpected .*technical_head\.extra"),
    (lambda sd: sd.update({"aesthetic_head.fc_last.bias": torch.zeros(2)}), r"wrong shape.*fc_last\.bias: checkpoint \(2,\)"),
    (lambda sd: sd.pop("technical_backbone.patch_embed.proj.weight"), r"neither a Swin3D .* nor a ConvNeXt"),
    (lambda sd: sd.pop("technical_head.fc_hid.weight"), r"has no 'technical_head\.fc_hid\.weight'"),
])
def test_wrong_or_missing_keys_are_clear_errors(tmp_path, edit, message):
    state_dict = random_dover_state_dict(TINY_DOVER)
    edit(state_dict)
    torch.save(state_dict, tmp_path / "DOVER.pth")
    with pytest.raises(WeightsMismatchError, match=message):
        create_reward("dover", weights=str(tmp_path / "DOVER.pth"))


def test_variant_and_file_layout_mismatches_say_what_to_do(tmp_path, checkpoints):
    with pytest.raises(WeightsMismatchError, match="variant=mobile"):
        create_reward("dover", weights=str(checkpoints["mobile"]))
    with pytest.raises(WeightsMismatchError, match="variant=dover"):
        create_reward("dover", variant="mobile", weights=str(checkpoints["dover"]))
    torch.save({"state_dict": random_dover_state_dict(TINY_DOVER)}, tmp_path / "wrapped.pth")
    with pytest.raises(WeightsMismatchError, match="DOVER\\+\\+"):
        create_reward("dover", weights=str(tmp_path / "wrapped.pth"))


def test_weight_files_and_the_missing_weights_message():
    info = get_reward_info("dover")
    (dover,) = info.weight_files()
    (mobile,) = info.weight_files({"variant": "mobile"})
    assert (dover.repo, dover.filename, dover.url) == ("teowu/DOVER", "DOVER.pth", None)
    assert mobile.filename == "DOVER-Mobile.pth" and mobile.url.endswith("/v0.5.0/DOVER-Mobile.pth")
    with pytest.raises(MissingWeightsError) as raised:
        create_reward("dover")
    for expected in ("DOVER.pth", "teowu/DOVER", "239.62 MB", "rewardkit download dover", "--weights PATH"):
        assert expected in str(raised.value)


def test_weights_are_found_in_the_hugging_face_cache(checkpoints, hf_cache):
    """Without weights=: DOVER.pth where a download would put it (teowu/DOVER in the HF cache)."""
    put_in_hf_cache(hf_cache, "teowu/DOVER", {"DOVER.pth": checkpoints["dover"]})
    try:
        reward = create_reward("dover", branch="technical")
        assert reward.model.config == TINY_DOVER
    finally:  # the cache is shared by the session: leave it as other tests expect it
        shutil.rmtree(hf_cache / "models--teowu--DOVER")


@pytest.mark.slow
@pytest.mark.parametrize("variant, config", [("dover", DOVER_CONFIG), ("mobile", MOBILE_CONFIG)])
def test_real_size_model_has_the_official_keys_and_shapes(variant, config):
    """Against the key -> shape list recorded from the official code's DOVER models (tests/data)."""
    official = json.loads(FIXTURE.read_text())[variant]
    ours = {key: list(value.shape) for key, value in DoverModel(config).state_dict().items()}
    assert ours == {key: shape for key, shape in official.items() if key not in UNUSED_KEYS}
    written = random_dover_state_dict(config)
    assert {key: list(value.shape) for key, value in written.items()} == official
    assert config_from_state_dict(written) == config


def test_centred_heads_redraw_only_the_heads_last_layers_and_unsaturate_the_fused_score():
    """``centred_heads`` (the real-size fixture's option) against the default draw: every tensor is the
    same except each head's ``fc_last``, whose weight is a tenth of the default one and whose bias is the
    score the published fusion centres on; scored, two different clips then give different fused scores
    well inside (0, 1) (both branch scores within a few of the fusion's scales of its centres)."""
    default = random_dover_state_dict(TINY_DOVER)
    centred = random_dover_state_dict(TINY_DOVER, centred_heads=True)
    assert default.keys() == centred.keys()
    last = {f"{branch}_head.fc_last.{leaf}" for branch in ("technical", "aesthetic") for leaf in ("weight", "bias")}
    assert all(torch.equal(default[key], centred[key]) for key in default.keys() - last)
    for branch, centre in (("technical", 0.1107), ("aesthetic", -0.08285)):
        assert torch.allclose(centred[f"{branch}_head.fc_last.weight"], default[f"{branch}_head.fc_last.weight"] * 0.1)
        assert centred[f"{branch}_head.fc_last.bias"].tolist() == [pytest.approx(centre)]
    model = DoverModel(TINY_DOVER)
    model.load_state_dict(centred)
    reward = small_reward(model)
    clips = torch.cat([torch.from_numpy(pattern_video(40, 240, 320, seed=seed)).permute(0, 3, 1, 2)[None] for seed in (0, 1)])
    with torch.no_grad():
        details = reward.score_sampled_details(clips[:, reward.sampler.indices(40)], None, 40)
    logits = torch.logit(details["fused"])
    assert logits.abs().max() < 3 and logits[0] != logits[1], details


# ------------------------------------------------------------------------------------------------- reward


def test_scores_are_reproducible_under_a_seed_and_change_with_it(model, video):
    reward = small_reward(model)
    with torch.no_grad():
        seeded = reward(video, rng=np.random.default_rng(0))
        default = reward(video)  # rng None: a generator seeded with the reward's seed, 0
        other = reward(video, rng=np.random.default_rng(4))
    assert seeded.dtype == torch.float32 and seeded.shape == (1,)
    assert torch.equal(seeded, default)
    assert not torch.equal(seeded, other)


def test_forward_is_score_sampled_on_the_sampled_frames(model, video):
    """forward = sampler.indices, gather, score_sampled, all from the same generator."""
    reward = small_reward(model, branch="fused")
    with torch.no_grad():
        direct = reward(video, rng=np.random.default_rng(9))
        rng = np.random.default_rng(9)
        indices = reward.sampler.indices(40, rng)
        assert len(indices) == 32 + 8
        details = reward.score_sampled_details(video[:, indices], torch.tensor([indices]), 40, rng=rng)
    assert torch.equal(direct, details["score"]) and torch.equal(details["score"], details["fused"])
    assert torch.allclose(details["fused"], fuse_scores(details["technical"], details["aesthetic"]))


def test_branches_share_the_draws_and_name_their_outputs(model, video):
    """With 40 frames no aesthetic offset is drawn (segments of 1 frame), so branch=technical consumes the
    generator exactly as branch=fused does and must give the same technical score."""
    fused, technical, aesthetic = (small_reward(model, branch=b) for b in ("fused", "technical", "aesthetic"))
    assert fused.output_names == ("technical", "aesthetic", "fused")
    assert technical.output_names == ("technical",) and technical.sampler.counts == (32, 0)
    assert aesthetic.sampler.counts == (0, 8)
    with torch.no_grad():
        both = fused.score_sampled_details(*sampled(fused, video, 1), rng=np.random.default_rng(1))
        only = technical.score_sampled_details(*sampled(technical, video, 1), rng=np.random.default_rng(1))
        look = aesthetic.score_sampled_details(*sampled(aesthetic, video, 1), rng=np.random.default_rng(1))
    assert set(only) == {"score", "technical"} and set(look) == {"score", "aesthetic"}
    assert torch.allclose(only["technical"], both["technical"], atol=1e-6)
    assert torch.allclose(look["aesthetic"], both["aesthetic"], atol=1e-6)


def sampled(reward: DoverReward, video: torch.Tensor, seed: int):
    indices = reward.sampler.indices(video.shape[1], np.random.default_rng(seed))
    return video[:, indices], torch.tensor([indices]), video.shape[1]


def test_batches_score_each_video_as_alone(model, video):
    """Offsets are drawn per video in batch order: a batch of two equals two calls sharing the generator."""
    reward = small_reward(model)
    frames, indices, count = sampled(reward, video, 2)
    other = torch.flip(frames, dims=[-1])
    with torch.no_grad():
        rng = np.random.default_rng(6)
        separate = torch.cat([reward.score_sampled(frames, indices, count, rng=rng), reward.score_sampled(other, indices, count, rng=rng)])
        batched = reward.score_sampled(torch.cat([frames, other]), torch.cat([indices, indices]), count, rng=np.random.default_rng(6))
    assert torch.allclose(separate, batched, atol=1e-5)


def test_differentiable_technical_gradients_reach_exactly_the_fragment_pixels(model, video):
    """Gradient is non-zero inside the fragments of the sampled frames and exactly zero elsewhere
    (positions and frame choice are discrete)."""
    reward = small_reward(model, branch="technical", mode="differentiable")
    pixels = (video.float() / 255).requires_grad_(True)
    with torch.inference_mode():  # as the engine runs: the cached attention geometry must not poison autograd
        reward(pixels.detach())
    reward(pixels, rng=np.random.default_rng(8)).sum().backward()
    rng = np.random.default_rng(8)
    indices = reward.sampler.indices(40, rng)
    offsets = draw_fragment_offsets(240, 320, 1, SMALL, rng)
    read = torch.zeros(40, 240, 320, dtype=torch.bool)
    for index in set(indices):
        for i, top in enumerate(fragment_starts(240, 7, 16)):
            for j, left in enumerate(fragment_starts(320, 7, 16)):
                y, x = top + offsets[0, i, j, 0], left + offsets[1, i, j, 0]
                read[index, y : y + 16, x : x + 16] = True
    gradient = pixels.grad[0].abs().sum(1)
    assert (gradient[~read] == 0).all()
    assert (gradient[read] > 0).float().mean() > 0.99


def test_differentiable_aesthetic_gradients_reach_every_pixel_of_the_sampled_frames(model, video):
    """With antialiasing the resize reads every pixel of a sampled frame; other frames get none."""
    reward = small_reward(model, branch="aesthetic", mode="differentiable", antialias=True)
    pixels = (video.float() / 255).requires_grad_(True)
    reward(pixels, rng=np.random.default_rng(8)).sum().backward()
    indices = set(reward.sampler.indices(40, np.random.default_rng(8)))
    gradient = pixels.grad[0].abs().sum(1)
    assert (gradient[sorted(indices)] > 0).all()
    assert (gradient[sorted(set(range(40)) - indices)] == 0).all()


def test_reference_and_differentiable_agree_on_8_bit_frames(model, video):
    """The technical view of frames larger than the view is a pure crop, so the two modes give the same score; the
    aesthetic one differs only by the 8-bit rounding of the resize."""
    scores = {}
    for mode in ("reference", "differentiable"):
        reward = small_reward(model, mode=mode)
        with torch.no_grad():
            scores[mode] = reward.score_sampled_details(*sampled(reward, video.float() / 255, 0), rng=np.random.default_rng(0))
    assert torch.allclose(scores["reference"]["technical"], scores["differentiable"]["technical"], atol=1e-6)
    assert torch.allclose(scores["reference"]["aesthetic"], scores["differentiable"]["aesthetic"], atol=1e-2)


def test_bad_inputs_are_clear_errors(model, video):
    reward = small_reward(model)
    with pytest.raises(ValueError, match="at least that large, got 12x300"):
        reward(torch.zeros(1, 40, 3, 12, 300, dtype=torch.uint8))
    assert small_reward(model, branch="aesthetic")(torch.zeros(1, 40, 3, 12, 300, dtype=torch.uint8)).shape == (1,)
    with pytest.raises(ValueError, match=r"expects the 40 frames its sampler picks \(32 technical, then 8 aesthetic\), got 5"):
        reward.score_sampled(video[:, :5], torch.zeros(1, 5, dtype=torch.long), 40)
    with pytest.raises(ValueError, match="add a batch dimension"):
        reward(video[0])
    with pytest.raises(ValueError, match="at least one frame"):
        reward(video[:, :0])
    with pytest.raises(ValueError, match="branch must be"):
        DoverReward(model, branch="overall")
    with pytest.raises(ValueError, match="not one of 'fused', 'technical', 'aesthetic'"):
        create_reward("dover", branch="overall")


def test_engine_scores_a_video_file_with_all_three_outputs(tmp_path, checkpoints):
    """rewardkit.scoring.score on an mp4 (the official sampling; the tiny DOVER-Mobile layout, cheaper
    than Swin): one ok row with dover_technical/aesthetic/fused columns, the score being the fused one."""
    from rewardkit.scoring import score
    from rewardkit.video.io import write_video

    path = tmp_path / "clip.mp4"
    write_video(path, pattern_video(40, 64, 96, seed=4))
    arguments = {"weights": {"dover": str(checkpoints["mobile"])}, "workers": 0, "progress": False}
    results = score([str(path)], ["dover:variant=mobile"], **arguments)
    assert list(results["status"]) == ["ok"], results["error"].tolist()
    row = results.iloc[0]
    fused = fuse_scores(torch.tensor(row["dover_technical"]), torch.tensor(row["dover_aesthetic"]))
    assert row["score"] == pytest.approx(row["dover_fused"]) == pytest.approx(float(fused), abs=1e-6)
    assert row["n_frames"] == 40 and len(row["weights_sha256"]) == 64
