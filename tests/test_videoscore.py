"""`videoscore` on tiny random checkpoints in the official Hugging Face layout, loaded through create_reward.

The official references: TIGER-AI-Lab/VideoScore at commit 8e449734bbeb4aba327b82f2269e7247633a7abc
(``examples/run_videoscore.py``: prompt template, frame sampling, inference; ``benchmark/utils_tools.py``: the
same template) and Mantis ``mantis/models/idefics2/modeling_idefics2.py`` (``Idefics2ForSequenceClassification``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit import create_reward
from rewardkit.registry import get_reward_info
from rewardkit.rewards.videoscore import (
    OUTPUT_NAMES,
    REGRESSION_QUERY_PROMPT,
    VIDEOSCORE_WEIGHTS,
    VideoScoreSampler,
    build_query,
)
from rewardkit.testing import pattern_image, put_in_hf_cache
from rewardkit.testing.videoscore import official_state_dict_shapes, write_videoscore_checkpoint
from rewardkit.weights import MissingWeightsError, WeightsMismatchError

PROMPTS = ["a red fox running through a snowy forest at dawn", "a cat", "two people walking on the beach at sunset"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_videoscore_checkpoint(tmp_path_factory.mktemp("videoscore") / "VideoScore", seed=0)


@pytest.fixture(scope="module")
def build(folder):
    built = {}

    def make(**options):
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = create_reward("videoscore", weights=str(folder), **options)
        return built[key]

    return make


def videos(count=2, frames=4, height=48, width=64, seed=0) -> torch.Tensor:
    """uint8 ``[B, T, 3, H, W]``: textured frames shifting over time, different per video (4 frames: fewer than
    VideoScore's 16, so all are scored; every frame costs a 378 x 378 vision pass)."""
    stacks = [
        np.stack([np.roll(pattern_image(width, height, seed=seed + 7 * v), 2 * t, axis=1) for t in range(frames)])
        for v in range(count)
    ]
    return torch.from_numpy(np.stack(stacks)).permute(0, 1, 4, 2, 3).contiguous()


def _variant(tmp_path: Path, source: Path, edit) -> Path:
    """Copy of the checkpoint folder with ``edit(state_dict)`` applied to the shard holding ``score.*``."""
    from safetensors.torch import load_file, save_file

    target = tmp_path / "variant"
    shutil.copytree(source, target)
    index = json.loads((target / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["score.weight"]
    state_dict = load_file(str(target / shard))
    edit(state_dict)
    save_file(state_dict, str(target / shard), metadata={"format": "pt"})
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != shard} | dict.fromkeys(state_dict, shard)
    (target / "model.safetensors.index.json").write_text(json.dumps(index))
    return target


def test_scores_per_video_depend_on_frames_and_prompt(build):
    reward = build()
    pixels = videos()
    scores = reward(pixels, PROMPTS[:2])
    assert scores.shape == (2,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    same_prompt = reward(pixels, [PROMPTS[0]] * 2)
    assert same_prompt[0] != same_prompt[1], "the frames must matter"
    swapped = reward(pixels[[0, 0]], PROMPTS[:2])
    assert swapped[0] != swapped[1], "the prompt must matter"
    # float frames in [0, 1] are rounded to 8 bits like a decoded video: same scores as the uint8 frames
    torch.testing.assert_close(reward(pixels.float() / 255, PROMPTS[:2]), scores, atol=0, rtol=0)


def test_scores_are_deterministic(build):
    reward = build()
    pixels = videos(count=1, seed=3)
    torch.testing.assert_close(reward(pixels, PROMPTS[:1]), reward(pixels, PROMPTS[:1]), atol=0, rtol=0)


def test_model_keys_are_the_official_ones(build, folder):
    """The module's state dict has exactly the keys and shapes of Mantis' Idefics2ForSequenceClassification
    (independent list in rewardkit.testing.videoscore, checked against a Mantis save_pretrained)."""
    own = {key: tuple(value.shape) for key, value in build().model.state_dict().items()}
    official = official_state_dict_shapes(json.loads((folder / "config.json").read_text()))
    assert own == official


def test_perceiver_uses_the_text_models_rms_norm_epsilon(build, folder):
    """Mantis' perceiver reads ``text_config.rms_norm_eps`` (1e-5); transformers' own default would be 1e-6."""
    config = json.loads((folder / "config.json").read_text())
    assert "rms_norm_eps" not in config["perceiver_config"]
    perceiver = build().model.model.connector.perceiver_resampler
    assert perceiver.norm.variance_epsilon == config["text_config"]["rms_norm_eps"] == 1e-5
    assert perceiver.layers[0].input_latents_norm.variance_epsilon == 1e-5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd.__setitem__("score.b", sd.pop("score.bias")), r"1 missing \(e.g. score.bias\); 1 unexpected \(e.g. score.b\)"),
        (lambda sd: sd.pop("score.weight"), r"1 missing \(e.g. score.weight\) keys"),
        (lambda sd: sd.__setitem__("lm_head.weight", torch.zeros(4, 32)), r"1 unexpected \(e.g. lm_head.weight\) keys"),
        (lambda sd: sd.__setitem__("score.weight", torch.zeros(3, 32)), r"wrong shape \(e.g. score.weight: checkpoint \(3, 32\) vs model \(5, 32\)"),
    ],
    ids=["renamed", "missing", "unexpected", "shape"],
)
def test_strict_key_check(folder, tmp_path, edit, message):
    variant = _variant(tmp_path, folder, edit)
    with pytest.raises(WeightsMismatchError, match=message):
        create_reward("videoscore", weights=str(variant))


def test_prompt_template_is_the_official_text():
    """sha256 of REGRESSION_QUERY_PROMPT as read from examples/run_videoscore.py (identical in
    benchmark/utils_tools.py) at commit 8e44973, trailing space after 'sub-score,' included."""
    official_sha256 = "49b386d9ea3003760c983cc258cf4211faf858d58191f95fcfacdf68a8fed2c0"
    assert hashlib.sha256(REGRESSION_QUERY_PROMPT.encode()).hexdigest() == official_sha256
    assert len(REGRESSION_QUERY_PROMPT) == 1163
    query = build_query("a {braced} fox", 3)
    assert query == REGRESSION_QUERY_PROMPT.replace("{text_prompt}", "a {braced} fox") + "<image> <image> <image> "
    with pytest.raises(ValueError, match="<image>"):
        build_query("<image> <image>", 1)


@pytest.mark.parametrize(
    ("n", "num_frames", "expected"),
    [
        # floor(k * 100 / 16) for k = 0..15: steps of 6.25
        (16, 100, [0, 6, 12, 18, 25, 31, 37, 43, 50, 56, 62, 68, 75, 81, 87, 93]),
        # floor(k * 30 / 16): steps of 1.875
        (16, 30, [0, 1, 3, 5, 7, 9, 11, 13, 15, 16, 18, 20, 22, 24, 26, 28]),
        (16, 16, list(range(16))),  # T <= N: every frame
        (16, 9, list(range(9))),
        (48, 50, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                  25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48]),
    ],
)  # fmt: skip
def test_frame_indices_are_the_official_uniform_sampling(n, num_frames, expected):
    """Hand-computed ``np.arange(0, T, T / N).astype(int)`` (T > N) or all frames (examples/run_videoscore.py)."""
    assert VideoScoreSampler(n).indices(num_frames) == expected


def test_version_sets_the_number_of_frames(build):
    assert build().sampler == VideoScoreSampler(16)
    assert build(version="v1.1").sampler == VideoScoreSampler(48)
    with pytest.raises(ValueError, match="at least 1 frame"):
        VideoScoreSampler(16).indices(0)


def test_details_are_the_five_outputs_and_output_picks_the_main_score(build):
    """``score`` is the mean of the five by default (get_genaibench_pairwise_acc.py averages them); ``output``
    selects one column instead."""
    pixels = videos(count=2, frames=20, seed=5)
    indices = torch.tensor([build().sampler.indices(20)[::4]] * 2)  # 4 of the 16 sampled frames keep this test fast
    sampled = pixels[:, indices[0]]
    details = build().score_sampled_details(sampled, indices, 20, PROMPTS[:2])
    assert set(details) == {"score", *OUTPUT_NAMES} and build().output_names == OUTPUT_NAMES
    assert all(value.shape == (2,) for value in details.values())
    stacked = torch.stack([details[name] for name in OUTPUT_NAMES], dim=1)
    torch.testing.assert_close(details["score"], stacked.mean(dim=1), atol=0, rtol=0)
    torch.testing.assert_close(build().score_sampled(sampled, indices, 20, PROMPTS[:2]), details["score"], atol=0, rtol=0)
    dynamic = build(output="dynamic_degree").score_sampled(sampled, indices, 20, PROMPTS[:2])
    torch.testing.assert_close(dynamic, details["dynamic_degree"], atol=0, rtol=0)


def test_batching_matches_one_video_at_a_time(build):
    """Right padding of different-length prompts leaves each video's score as the official batch-of-one run."""
    reward = build()
    pixels = videos(count=3, seed=9)
    batched = reward(pixels, PROMPTS)
    single = torch.cat([reward(pixels[i : i + 1], [PROMPTS[i]]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_text_is_tokenized_by_tokenizer_json_as_is(build, folder):
    """Token ids as the raw ``tokenizers`` pipeline of tokenizer.json gives them (what transformers 4.x ran), with
    each ``<image>`` expanded to fake + 64 image tokens + fake and ``<s>`` first."""
    from tokenizers import Tokenizer

    reward = build()
    inputs = reward.encode(videos(count=1, frames=3), ["a red fox"])
    ids = inputs["input_ids"][0].tolist()
    expanded = build_query("a red fox", 3).replace("<image>", "<fake_token_around_image>" + "<image>" * 64 + "<fake_token_around_image>")
    assert ids == Tokenizer.from_file(str(folder / "tokenizer.json")).encode(expanded).ids
    assert ids[0] == 1 and ids.count(32001) == 3 * 64 and ids.count(32000) == 6
    assert inputs["pixel_values"].shape == (1, 3, 3, 378, 378), "48x64 frames are scaled up to 378 on each side"


def test_reference_image_preprocessing(build):
    """Idefics2 image processor, PIL: bilinear resize (each side >= 378, longer side <= 980), (x/255 - 0.5)/0.5."""
    from PIL import Image

    frame = pattern_image(1100, 620, seed=1)
    pixels = torch.from_numpy(frame).permute(2, 0, 1)[None, None]
    got = build().encode(pixels, ["x"])["pixel_values"][0, 0]
    height = int(980 / (1100 / 620))  # longest edge 980, aspect kept with int(), as get_resize_output_image_size
    resized = np.asarray(Image.fromarray(frame).resize((980, height), Image.BILINEAR), dtype=np.float32)
    expected = torch.from_numpy(((resized / 255 - 0.5) / 0.5).transpose(2, 0, 1))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_registration():
    info = get_reward_info("videoscore")
    assert info.modality == "video" and info.needs_prompt and not info.differentiable
    assert set(info.options) == {"version", "output"}
    assert info.defaults == {"version": "v1", "output": "mean"}
    assert [w.repo for w in info.weight_files({"version": "v1.1"})] == ["TIGER-Lab/VideoScore-v1.1"]


def test_missing_files_and_prompts_are_clear_errors(folder, tmp_path, build):
    with pytest.raises(MissingWeightsError, match="does not exist"):
        create_reward("videoscore", weights=str(tmp_path / "nowhere"))
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(MissingWeightsError, match=r"lacks tokenizer.json.*TIGER-Lab/VideoScore"):
        create_reward("videoscore", weights=str(partial))
    with pytest.raises(ValueError, match="needs one prompt"):
        build()(videos(count=1))


def test_weights_from_hf_cache_and_clear_error_when_missing_offline(folder, hf_cache, build):
    with pytest.raises(MissingWeightsError, match=r"TIGER-Lab/VideoScore.*HF_HUB_OFFLINE"):
        create_reward("videoscore")
    weight = VIDEOSCORE_WEIGHTS["v1"]
    put_in_hf_cache(hf_cache, weight.repo, {name: folder / name for name in (weight.filename, *weight.extra_files)})
    cached = create_reward("videoscore")
    pixels = videos(count=1, seed=11)
    torch.testing.assert_close(cached(pixels, PROMPTS[:1]), build()(pixels, PROMPTS[:1]), atol=0, rtol=0)
    assert cached.weights_sha256 == build().weights_sha256 and len(cached.weights_sha256) == 64


def test_scoring_engine_writes_the_five_outputs(folder, tmp_path):
    """rewardkit.scoring.score on a video file: an ok row with the main score and one column per output."""
    from rewardkit.scoring import score
    from rewardkit.video.io import write_video

    frames = videos(count=1, frames=24, height=48, width=64, seed=2)[0].permute(0, 2, 3, 1).numpy()
    write_video(tmp_path / "a red fox running through a snowy forest-0.mp4", frames)
    table = score(tmp_path, ["videoscore"], weights={"videoscore": str(folder)}, workers=0, progress=False)
    row = table.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["prompt"] == "a red fox running through a snowy forest"
    outputs = [row[f"videoscore_{name}"] for name in OUTPUT_NAMES]
    assert np.isfinite(outputs).all() and row["score"] == pytest.approx(np.mean(outputs), abs=1e-6)


def _real_snapshot(repo: str) -> Path | None:
    """The real checkpoint in the user's Hugging Face cache (tests run with a private empty cache, so look at
    REWARDKIT_REAL_HF_CACHE or ~/.cache/huggingface/hub)."""
    root = Path(os.environ.get("REWARDKIT_REAL_HF_CACHE", Path.home() / ".cache" / "huggingface" / "hub"))
    snapshots = root / f"models--{repo.replace('/', '--')}" / "snapshots"
    weight = VIDEOSCORE_WEIGHTS["v1"]
    for snapshot in sorted(snapshots.glob("*")) if snapshots.is_dir() else []:
        if all((snapshot / name).exists() for name in (weight.filename, *weight.extra_files)):
            return snapshot
    return None


@pytest.mark.slow
def test_real_checkpoint_loads_strictly_and_scores_the_official_example():
    """Real size (8.3B parameters, 16.5 GB): all keys load; on the repository's examples/video1.mp4
    (VIDEOSCORE_EXAMPLE_VIDEO) the outputs match those printed in examples/run_videoscore.py (bf16 on GPU)."""
    snapshot = _real_snapshot("TIGER-Lab/VideoScore")
    if snapshot is None:
        pytest.skip("the real TIGER-Lab/VideoScore weights are not in the Hugging Face cache (16.5 GB; "
                    "`rewardkit download videoscore`, or set REWARDKIT_REAL_HF_CACHE)")  # fmt: skip
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reward = create_reward("videoscore", weights=str(snapshot), device=device, dtype="bf16")
    own = {key: tuple(value.shape) for key, value in reward.model.state_dict().items()}
    assert own == official_state_dict_shapes(json.loads((snapshot / "config.json").read_text()))
    example = os.environ.get("VIDEOSCORE_EXAMPLE_VIDEO")
    if example is None:
        return
    from rewardkit.video.io import probe, read_frames

    info = probe(example)
    indices = reward.sampler.indices(info.num_frames)
    frames = torch.from_numpy(np.stack(read_frames(example, indices))).permute(0, 3, 1, 2)[None]
    prompt = ("Near the Elephant Gate village, they approach the haunted house at night. Rajiv feels anxious, but "
              "Bhavesh encourages him. As they reach the house, a mysterious sound in the air adds to the suspense.")  # fmt: skip
    details = reward.score_sampled_details(frames, torch.tensor([indices]), info.num_frames, [prompt])
    got = [float(details[name][0]) for name in OUTPUT_NAMES]
    np.testing.assert_allclose(got, [2.297, 2.469, 2.906, 2.766, 2.516], atol=0.05)
