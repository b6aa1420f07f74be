"""`videoreward` (VideoAlign) on tiny random checkpoints in the official layout, loaded through create_reward.

The tiny files (``rewardkit.testing.videoreward``) have the official key names and nesting: the official
``inference.py`` (KwaiVGI/VideoAlign commit 219ab9d, transformers 4.45.2, peft 0.10.0) loads them strictly
and, run on the same tiny files and videos, agrees with this reward to 1.4e-6 in fp32 (a one-off comparison
outside the test suite, see the report); these tests check each piece against hand-computed values or an
independent computation.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit import create_reward
from rewardkit.registry import get_reward_info
from rewardkit.rewards.videoreward import (
    PROMPT_TEMPLATE,
    RELEASED_NORMALIZATION,
    REWARD_TOKENS,
    VIDEO_MIN_PIXELS,
    LoraSpec,
    VideoAlignModel,
    VideoAlignSampler,
    build_prompt,
    official_keys,
    smart_resize,
)
from rewardkit.testing import put_in_hf_cache
from rewardkit.testing.videoreward import (
    REAL_BASE_CONFIG,
    model_config_json,
    official_state_dict_shapes,
    write_videoreward_files,
)
from rewardkit.weights import MissingWeightsError, WeightsMismatchError, sha256_of

PROMPTS = ["A red fox runs through the snowy forest at dawn.", "a cat {sitting} on a chair"]
CHECKPOINT = "checkpoint-11352"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json",
)  # fmt: skip


@pytest.fixture(scope="module")
def videoreward_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(VideoReward folder, Qwen2-VL base folder): model_config.json names the base by its path."""
    return write_videoreward_files(tmp_path_factory.mktemp("videoreward"), seed=0)


@pytest.fixture(scope="module")
def build(videoreward_files):
    built = {}
    folder, _ = videoreward_files

    def make(**options):
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = create_reward("videoreward", weights=str(folder), **options)
        return built[key]

    return make


def videos(seed=0, count=2, frames=12, height=64, width=80) -> torch.Tensor:
    """uint8 videos [B, T, 3, H, W]: smooth gradients that move, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = np.empty((count, frames, 3, height, width), dtype=np.uint8)
    for b in range(count):
        for t in range(frames):
            base = np.stack([(xx * 3 + t * 9 + 40 * b) % 256, (yy * 2 + t * 5) % 256, (xx + yy + 60 * b) % 256])
            out[b, t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return torch.from_numpy(out)


def sampled(reward, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    num_frames = clips.shape[1]
    indices = reward.frame_indices(num_frames, clips.shape[0])
    return torch.stack([clip[index] for clip, index in zip(clips, indices, strict=True)]), indices, num_frames


def _variant(tmp_path: Path, source: Path, edit) -> Path:
    """A copy of the VideoReward folder whose model.pth is edited by ``edit(state_dict)``."""
    folder = tmp_path / "VideoReward"
    shutil.copytree(source, folder)
    path = folder / CHECKPOINT / "model.pth"
    state_dict = torch.load(path, weights_only=True)
    edit(state_dict)
    torch.save(state_dict, path)
    return folder


def test_registration_declares_a_video_reward_with_prompt_and_no_gradients():
    info = get_reward_info("videoreward")
    assert (info.modality, info.needs_prompt, info.differentiable) == ("video", True, False)
    files = {(weight.repo, weight.filename) for weight in info.weight_files()}
    assert files == {("KwaiVGI/VideoReward", f"{CHECKPOINT}/model.pth"), ("Qwen/Qwen2-VL-2B-Instruct", "config.json")}
    model_file = next(weight for weight in info.weight_files() if weight.repo == "KwaiVGI/VideoReward")
    assert model_file.size == 5_031_072_529
    assert set(model_file.extra_files) == {"model_config.json", *(f"{CHECKPOINT}/tokenizer/{name}" for name in TOKENIZER_FILES)}


def test_loads_through_create_reward_and_scores_depend_on_video_and_caption(build, videoreward_files):
    reward = build()
    folder, _ = videoreward_files
    assert reward.modality == "video" and reward.needs_prompt and reward.output_names == ("vq", "mq", "ta", "overall")
    assert reward.weights_sha256 == sha256_of(folder / CHECKPOINT / "model.pth")
    frames, indices, num_frames = sampled(reward, videos())
    scores = reward.score_sampled(frames, indices, num_frames, PROMPTS)
    assert scores.shape == (2,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    other_video = reward.score_sampled(sampled(reward, videos(seed=5))[0], indices, num_frames, PROMPTS)
    other_caption = reward.score_sampled(frames, indices, num_frames, PROMPTS[::-1])
    assert (other_video - scores).abs().min() > 1e-4
    assert (other_caption - scores).abs().min() > 1e-4


def test_scores_are_deterministic_and_do_not_depend_on_the_batch(build):
    """Right padding and causal attention: a video scores the same alone or next to a longer caption."""
    reward = build()
    frames, indices, num_frames = sampled(reward, videos())
    first = reward.score_sampled_details(frames, indices, num_frames, PROMPTS)
    again = reward.score_sampled_details(frames, indices, num_frames, PROMPTS)
    for key in first:
        torch.testing.assert_close(first[key], again[key], atol=0, rtol=0)
    alone = [reward.score_sampled_details(frames[i : i + 1], indices[i : i + 1], num_frames, PROMPTS[i]) for i in (0, 1)]
    for key in first:
        torch.testing.assert_close(first[key], torch.cat([item[key] for item in alone]), atol=1e-5, rtol=0)


def test_forward_samples_with_the_sampler_and_uint8_equals_rounded_float(build):
    reward = build()
    clips = videos(frames=30)
    frames, indices, num_frames = sampled(reward, clips)
    assert indices.tolist() == [[0, 10, 19, 29]] * 2  # 30 frames at the assumed 24 fps: 4 frames (see the sampler test)
    expected = reward.score_sampled(frames, indices, num_frames, PROMPTS)
    torch.testing.assert_close(reward(clips, PROMPTS), expected, atol=0, rtol=0)
    # Float frames are rounded to 8 bits, as a saved video: x / 255 gives back the uint8 scores exactly.
    torch.testing.assert_close(reward(clips.float() / 255, PROMPTS), expected, atol=0, rtol=0)
    # num_frames fixes the count (inference.py's num_frames), whatever video_fps says: round(linspace(0, 11, 6)).
    fixed = build(num_frames=6, video_fps=8.0)
    assert fixed.sampler == VideoAlignSampler(sample_fps=2.0, video_fps=8.0, fixed_frames=6)
    assert fixed.sampler.indices(12) == [0, 2, 4, 7, 9, 11]


def test_prompt_template_is_the_official_text():
    """sha256 of prompt_template.py's DETAILED_PROMPT_WITH_SPECIAL_TOKEN and of
    build_prompt("a cat", ["VQ", "MQ", "TA"], "detailed_special") at KwaiVGI/VideoAlign commit 219ab9d."""
    assert hashlib.sha256(PROMPT_TEMPLATE.encode()).hexdigest() == (
        "fdb6309bac618dd0c8b1b589d3a0970a974f7856eecbb355a190b2dce54af700"
    )
    assert hashlib.sha256(build_prompt("a cat").encode()).hexdigest() == (
        "3c8e9026e357f4015e5f12406667aa8dffa7cb4222a800e74f87bd9655c3f1f0"
    )
    text = build_prompt("x {y} z")
    assert "\nTextual prompt - x {y} z\nPlease provide the ratings of Text Alignment: <|TA_reward|>\nEND\n" in text
    assert [text.index(token) for token in REWARD_TOKENS] == sorted(text.index(token) for token in REWARD_TOKENS)


def test_chat_text_is_one_user_turn_with_the_video_first(build):
    """Qwen2-VL-Instruct's chat format, written out by hand: system turn, user turn (video, then the
    prompt), open assistant turn (``apply_chat_template(..., add_generation_prompt=True)``)."""
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>" + build_prompt("a cat") + "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert build().chat_text("a cat") == expected


def test_reward_token_positions_and_the_head_match_a_hand_computation(build):
    """The rewards are rm_head applied to the last hidden state at the three reward tokens, found here by
    searching the token ids independently; a caption holding a reward token is refused."""
    reward = build(normalize=False)
    frames, indices, num_frames = sampled(reward, videos())
    inputs = reward.prepare(frames, PROMPTS)
    tokenizer = reward.processor.tokenizer
    token_ids = [tokenizer.convert_tokens_to_ids(token) for token in REWARD_TOKENS]
    model = reward.model
    length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        hidden = model.backbone(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=torch.arange(length).expand(2, length),
            pixel_values_videos=inputs["pixel_values_videos"],
            video_grid_thw=inputs["video_grid_thw"],
        ).last_hidden_state
    head = model.rm_head.weight[0]
    for row in range(2):
        ids = inputs["input_ids"][row].tolist()
        positions = [ids.index(token_id) for token_id in token_ids]
        assert positions == sorted(positions) and all(ids.count(token_id) == 1 for token_id in token_ids)
        # The video tokens come before all of them.
        assert ids.index(reward.processor.video_token_id) < positions[0]
        expected = torch.stack([hidden[row, position] @ head for position in positions])
        details = reward.score_sampled_details(frames[row : row + 1], indices[row : row + 1], num_frames, PROMPTS[row])
        got = torch.stack([details[key][0] for key in ("vq", "mq", "ta")])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="reward tokens"):
        reward.score_sampled(frames[:1], indices[:1], num_frames, ["a cat <|TA_reward|>"])


def test_normalization_and_overall_follow_inference_py(build):
    """inference.py: (r - mean) / std per dimension with inference_config's constants, typed here by hand;
    Overall = VQ + MQ + TA after normalisation (or of the raw values with normalize=False)."""
    constants = {"VQ": (3.6757, 2.2476), "MQ": (1.1646, 1.3811), "TA": (2.8105, 2.5121)}
    assert RELEASED_NORMALIZATION == {f"{d}_{s}": constants[d][i] for d in constants for i, s in enumerate(("mean", "std"))}
    frames, indices, num_frames = sampled(build(), videos())
    raw = build(normalize=False).score_sampled_details(frames, indices, num_frames, PROMPTS)
    normed = build().score_sampled_details(frames, indices, num_frames, PROMPTS)
    for dimension, (mean, std) in constants.items():
        torch.testing.assert_close(normed[dimension.lower()], (raw[dimension.lower()] - mean) / std, atol=1e-6, rtol=0)
    for details in (raw, normed):
        torch.testing.assert_close(details["overall"], details["vq"] + details["mq"] + details["ta"], atol=0, rtol=0)
        torch.testing.assert_close(details["score"], details["overall"], atol=0, rtol=0)


def test_output_option_picks_the_main_score(build):
    frames, indices, num_frames = sampled(build(), videos())
    details = build().score_sampled_details(frames, indices, num_frames, PROMPTS)
    torch.testing.assert_close(build().score_sampled(frames, indices, num_frames, PROMPTS), details["overall"])
    for output in ("vq", "mq", "ta"):
        torch.testing.assert_close(build(output=output).score_sampled(frames, indices, num_frames, PROMPTS), details[output])
    with pytest.raises(ValueError, match="not one of"):
        create_reward("videoreward", weights="unused", output="VQ")


def test_lora_is_merged_with_alpha_over_r(build, videoreward_files):
    """A merged decoder weight is base + (alpha / r) * B @ A from model.pth (tiny: r 4, alpha 8), in fp32;
    weights without LoRA are copied unchanged."""
    folder, _ = videoreward_files
    state_dict = torch.load(folder / CHECKPOINT / "model.pth", weights_only=True)
    model = build().model
    key = "base_model.model.model.layers.1.mlp.down_proj."
    expected = state_dict[key + "base_layer.weight"].float() + 2.0 * (
        state_dict[key + "lora_B.default.weight"].float() @ state_dict[key + "lora_A.default.weight"].float()
    )
    torch.testing.assert_close(model.backbone.language_model.layers[1].mlp.down_proj.weight, expected, atol=0, rtol=0)
    bias = state_dict["base_model.model.model.layers.0.self_attn.k_proj.base_layer.bias"].float()
    torch.testing.assert_close(model.backbone.language_model.layers[0].self_attn.k_proj.bias, bias, atol=0, rtol=0)
    qkv = state_dict["base_model.model.visual.blocks.1.attn.qkv.weight"].float()
    torch.testing.assert_close(model.backbone.visual.blocks[1].attn.qkv.weight, qkv, atol=0, rtol=0)
    torch.testing.assert_close(model.rm_head.weight, state_dict["base_model.model.rm_head.weight"].float())


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda sd: sd.pop("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"), WeightsMismatchError, r"1 missing"),
        (lambda sd: sd.pop("base_model.model.lm_head.weight"), WeightsMismatchError, r"missing.*lm_head"),
        (lambda sd: sd.__setitem__("base_model.model.visual.blocks.9.norm1.weight", torch.ones(32)), WeightsMismatchError, r"unexpected.*blocks.9"),
        (
            lambda sd: sd.__setitem__("base_model.model.model.layers.1.mlp.up_proj.weight", sd.pop("base_model.model.model.layers.1.mlp.up_proj.base_layer.weight")),
            WeightsMismatchError,
            r"missing.*up_proj.base_layer.weight.*unexpected.*up_proj.weight",
        ),
        (lambda sd: sd.__setitem__("base_model.model.visual.merger.mlp.2.bias", torch.zeros(63)), WeightsMismatchError, r"wrong shape"),
        (lambda sd: sd.__setitem__("base_model.model.rm_head.weight", torch.zeros(2, 64)), WeightsMismatchError, r"1 or 3 outputs"),
        (lambda sd: sd.pop("base_model.model.model.embed_tokens.weight"), WeightsMismatchError, r"not a VideoReward model.pth"),
    ],
    ids=["missing-lora", "missing-lm-head", "unexpected", "lora-absent", "shape", "head-outputs", "not-videoreward"],
)
def test_checkpoint_key_mismatch_is_a_clear_error(videoreward_files, tmp_path, edit, error, message):
    folder = _variant(tmp_path, videoreward_files[0], edit)
    with pytest.raises(error, match=message):
        create_reward("videoreward", weights=str(folder))


def test_three_output_head_takes_the_diagonal(tmp_path):
    """output_dim 3 (train.sh's setting): VQ is output 0 at the VQ token, MQ output 1 at the MQ token, TA
    output 2 at the TA token (trainer.py: pooled_logits.diagonal)."""
    folder, _ = write_videoreward_files(tmp_path, seed=3, output_dim=3)
    reward = create_reward("videoreward", weights=str(folder), normalize=False)
    assert reward.model.rm_head.weight.shape == (3, 64)
    frames, indices, num_frames = sampled(reward, videos(count=1))
    inputs = reward.prepare(frames, PROMPTS[:1])
    length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        hidden = reward.model.backbone(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            position_ids=torch.arange(length)[None],
            pixel_values_videos=inputs["pixel_values_videos"],
            video_grid_thw=inputs["video_grid_thw"],
        ).last_hidden_state[0]
    ids = inputs["input_ids"][0].tolist()
    positions = [ids.index(reward.processor.tokenizer.convert_tokens_to_ids(token)) for token in REWARD_TOKENS]
    expected = torch.stack([hidden[p] @ reward.model.rm_head.weight[i] for i, p in enumerate(positions)])
    details = reward.score_sampled_details(frames, indices, num_frames, PROMPTS[:1])
    torch.testing.assert_close(torch.stack([details[k][0] for k in ("vq", "mq", "ta")]), expected, atol=1e-5, rtol=0)


def test_weights_may_name_the_folder_a_checkpoint_folder_or_model_pth(build, videoreward_files, tmp_path):
    """As utils.py: load_model_from_checkpoint, a folder means its latest checkpoint-N."""
    folder, _ = videoreward_files
    frames, indices, num_frames = sampled(build(), videos(count=1))
    expected = build().score_sampled(frames, indices, num_frames, PROMPTS[:1])
    for path in (folder / CHECKPOINT, folder / CHECKPOINT / "model.pth"):
        reward = create_reward("videoreward", weights=str(path))
        torch.testing.assert_close(reward.score_sampled(frames, indices, num_frames, PROMPTS[:1]), expected, atol=0, rtol=0)
    copy = _variant(tmp_path, folder, lambda sd: sd["base_model.model.rm_head.weight"].mul_(2))
    shutil.move(copy / CHECKPOINT, copy / "checkpoint-20000")
    shutil.copytree(folder / CHECKPOINT, copy / CHECKPOINT)
    later = create_reward("videoreward", weights=str(copy), normalize=False)
    raw = build(normalize=False).score_sampled(frames, indices, num_frames, PROMPTS[:1])
    torch.testing.assert_close(later.score_sampled(frames, indices, num_frames, PROMPTS[:1]), 2 * raw, atol=1e-5, rtol=1e-5)


def test_missing_files_are_clear_errors(videoreward_files, tmp_path):
    folder, _ = videoreward_files
    with pytest.raises(MissingWeightsError, match="KwaiVGI/VideoReward"):
        create_reward("videoreward", weights=str(tmp_path / "nowhere"))
    adapter = tmp_path / "adapter" / "checkpoint-5"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "adapter" / "model_config.json").write_text((folder / "model_config.json").read_text())
    with pytest.raises(MissingWeightsError, match="LoRA adapter"):
        create_reward("videoreward", weights=str(tmp_path / "adapter"))
    with pytest.raises(MissingWeightsError, match="preprocessor_config.json"):
        create_reward("videoreward", weights={"model": str(folder), "base": str(tmp_path / "adapter")})
    settings = json.loads((folder / "model_config.json").read_text())
    settings["data_config"]["prompt_template_type"] = "simple"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_config.json").write_text(json.dumps(settings))
    os.symlink(folder / CHECKPOINT, tmp_path / "other" / CHECKPOINT)
    with pytest.raises(WeightsMismatchError, match="prompt_template_type"):
        create_reward("videoreward", weights=str(tmp_path / "other"))
    del settings["inference_config"]
    settings["data_config"]["prompt_template_type"] = "detailed_special"
    (tmp_path / "other" / "model_config.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="normalize=False"):
        create_reward("videoreward", weights=str(tmp_path / "other"))


def test_weights_from_hf_cache_and_clear_error_when_missing_offline(hf_cache, tmp_path, build):
    with pytest.raises(MissingWeightsError, match=r"KwaiVGI/VideoReward.*HF_HUB_OFFLINE"):
        create_reward("videoreward")
    folder, base = write_videoreward_files(tmp_path, seed=0, base_name="Qwen/Qwen2-VL-2B-Instruct")
    files = {name: folder / name for name in ("model_config.json", f"{CHECKPOINT}/model.pth")}
    files.update({f"{CHECKPOINT}/tokenizer/{name}": folder / CHECKPOINT / "tokenizer" / name for name in TOKENIZER_FILES})
    put_in_hf_cache(hf_cache, "KwaiVGI/VideoReward", files)
    with pytest.raises(MissingWeightsError, match=r"(?s)Qwen/Qwen2-VL-2B-Instruct.*base=PATH"):
        create_reward("videoreward")
    put_in_hf_cache(hf_cache, "Qwen/Qwen2-VL-2B-Instruct", {n: base / n for n in ("config.json", "preprocessor_config.json")})
    reward = create_reward("videoreward")
    frames, indices, num_frames = sampled(reward, videos(count=1))
    expected = build().score_sampled(frames, indices, num_frames, PROMPTS[:1])  # the same seed, loaded by path
    torch.testing.assert_close(reward.score_sampled(frames, indices, num_frames, PROMPTS[:1]), expected, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("sampler", "num_frames", "expected"),
    [
        (VideoAlignSampler(), 30, [0, 10, 19, 29]),  # 30/24*2 = 2.5 -> at least 4
        (VideoAlignSampler(), 120, [0, 13, 26, 40, 53, 66, 79, 93, 106, 119]),  # 10 frames
        (VideoAlignSampler(), 108, [0, 15, 31, 46, 61, 76, 92, 107]),  # 9 -> round(4.5) * 2 = 8 (half to even)
        (VideoAlignSampler(), 3, [0, 2]),  # at most floor_even(3) = 2
        (VideoAlignSampler(video_fps=8.0), 30, [0, 4, 8, 12, 17, 21, 25, 29]),  # 7.5 -> 8
        (VideoAlignSampler(fixed_frames=5), 100, [0, 33, 66, 99]),  # round(2.5) * 2 = 4
        (VideoAlignSampler(fixed_frames=7), 6, [0, 1, 2, 3, 4, 5]),  # round(3.5) * 2 = 8, capped at 6
        (VideoAlignSampler(fixed_frames=3), 3, [0, 1, 2]),  # 4 capped at 3 (odd: the processor repeats the last)
    ],
)
def test_sampler_is_smart_nframes_with_uniform_indices(sampler, num_frames, expected):
    """vision_process.py: smart_nframes + round(linspace(0, T - 1, n)), hand-computed."""
    assert sampler.indices(num_frames) == expected
    assert pickle.loads(pickle.dumps(sampler)) == sampler


def test_sampler_limits():
    assert VideoAlignSampler().count(20_000) == 768  # 1666 frames wanted, FPS_MAX_FRAMES = 768
    with pytest.raises(ValueError, match="at least 2 frames"):
        VideoAlignSampler().indices(1)
    with pytest.raises(ValueError, match="num_frames must be"):
        VideoAlignSampler(fixed_frames=-1)


def test_smart_resize_hand_computed():
    """vision_process.py: smart_resize with VIDEO_MIN_PIXELS = 100352 and max_frame_pixels = 200704."""
    assert VIDEO_MIN_PIXELS == 100352
    # 480x832: 476x840 too big; beta = sqrt(480*832/200704) = 1.4106; floor(340.3/28)*28, floor(589.8/28)*28.
    assert smart_resize(480, 832, min_pixels=VIDEO_MIN_PIXELS, max_pixels=200704) == (336, 588)
    # 64x80: 56x84 too small; beta = sqrt(100352/5120) = 4.4272; ceil(283.3/28)*28, ceil(354.2/28)*28.
    assert smart_resize(64, 80, min_pixels=VIDEO_MIN_PIXELS, max_pixels=200704) == (308, 364)
    assert smart_resize(336, 448, min_pixels=VIDEO_MIN_PIXELS, max_pixels=200704) == (336, 448)  # already fits
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2100, min_pixels=VIDEO_MIN_PIXELS, max_pixels=200704)


def test_video_patches_are_the_official_preprocessing(build):
    """An independent computation of the official steps: torchvision bicubic antialiased resize of the uint8
    frames to smart_resize's size (vision_process.py: fetch_video), /255, OpenAI CLIP mean/std, then
    transformers 4.45's Qwen2VLImageProcessor patch order (reshape to [t, 2, C, h/2, 2, 14, w/2, 2, 14],
    transpose (0, 3, 6, 4, 7, 2, 1, 5, 8))."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    reward = build()
    frames, _, _ = sampled(reward, videos(count=1))
    inputs = reward.prepare(frames, PROMPTS[:1])
    resized = resize(frames[0], [308, 364], InterpolationMode.BICUBIC, antialias=True).float() / 255
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    pixels = ((resized - mean) / std).numpy()
    t, h, w = 2, 308 // 14, 364 // 14
    patches = pixels.reshape(t, 2, 3, h // 2, 2, 14, w // 2, 2, 14).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    expected = torch.from_numpy(np.ascontiguousarray(patches).reshape(t * h * w, 3 * 2 * 14 * 14))
    assert inputs["video_grid_thw"].tolist() == [[t, h, w]]
    torch.testing.assert_close(inputs["pixel_values_videos"], expected, atol=1e-5, rtol=0)
    video_tokens = (inputs["input_ids"][0] == reward.processor.video_token_id).sum().item()
    assert video_tokens == t * h * w // 4  # merge 2x2


def test_engine_scores_video_files_with_every_output(build, videoreward_files, tmp_path):
    """rewardkit.scoring.score decodes the sampled frames and writes one ok row per video with the
    videoreward_{vq,mq,ta,overall} columns, equal to scoring the same decoded frames directly."""
    from rewardkit.scoring import score
    from rewardkit.video.io import read_frames, write_video

    clips = videos(count=2, frames=20)
    paths = []
    for index, clip in enumerate(clips):
        paths.append(tmp_path / f"clip{index}.mp4")
        write_video(paths[-1], clip.permute(0, 2, 3, 1).numpy(), fps=24.0)
    results = score(
        [str(p) for p in paths],
        ["videoreward"],
        prompts={str(p): prompt for p, prompt in zip(paths, PROMPTS, strict=True)},
        weights={"videoreward": str(videoreward_files[0])},
        workers=0,
        progress=False,
    ).sort_values("path")
    assert results["status"].tolist() == ["ok", "ok"]
    reward = build()
    for row, path, prompt in zip(results.itertuples(), paths, PROMPTS, strict=True):
        indices = reward.sampler.indices(20)
        frames = torch.from_numpy(read_frames(path, indices)).permute(0, 3, 1, 2)[None]
        details = reward.score_sampled_details(frames, torch.tensor([indices]), 20, [prompt])
        assert row.score == pytest.approx(details["overall"].item(), abs=1e-5)
        for name in ("vq", "mq", "ta", "overall"):
            assert getattr(row, f"videoreward_{name}") == pytest.approx(details[name].item(), abs=1e-5)


@pytest.mark.slow
def test_real_size_key_layout_matches_the_published_file_size():
    """At Qwen2-VL-2B size (151660 token rows, rm_head 1 x 1536, LoRA r 64 on the 196 decoder projections),
    the keys rewardkit requires equal the independently listed official keys, and their bf16 tensors take
    5,030,744,064 bytes: the published model.pth (5,031,072,529 bytes) less 328 KB of torch.save container
    for its 1123 entries."""
    from transformers import Qwen2VLConfig

    config = Qwen2VLConfig.from_dict(REAL_BASE_CONFIG)
    config.text_config.vocab_size = 151660
    with torch.device("meta"):
        model = VideoAlignModel(config, 1)
    lora = LoraSpec.from_config(model_config_json("Qwen/Qwen2-VL-2B-Instruct")["peft_lora_config"])
    shapes = official_state_dict_shapes(REAL_BASE_CONFIG, vocab_rows=151660, output_dim=1, lora_r=64)
    keys = official_keys(model, lora)
    assert len(keys) == len(set(keys)) == 1123 and set(keys) == set(shapes)
    total = 2 * sum(math.prod(shape) for shape in shapes.values())
    assert total == 5_030_744_064 and 0 < 5_031_072_529 - total < 400_000


def _real_files() -> tuple[Path, Path] | None:
    """The real checkpoints in the user's Hugging Face cache (tests run with a private empty one)."""
    hub = Path(os.environ.get("REWARDKIT_REAL_HF_HUB_CACHE", Path.home() / ".cache" / "huggingface" / "hub"))
    models = sorted(hub.glob(f"models--KwaiVGI--VideoReward/snapshots/*/{CHECKPOINT}/model.pth"))
    bases = sorted(hub.glob("models--Qwen--Qwen2-VL-2B-Instruct/snapshots/*/preprocessor_config.json"))
    if not models or not bases:
        return None
    return models[-1].parent.parent, bases[-1].parent


@pytest.mark.slow
@pytest.mark.skipif(
    _real_files() is None,
    reason="the real VideoReward weights (KwaiVGI/VideoReward checkpoint-11352/model.pth, 5.03 GB, with "
    "Qwen/Qwen2-VL-2B-Instruct's config.json and preprocessor_config.json) are not in ~/.cache/huggingface/hub "
    "(or REWARDKIT_REAL_HF_HUB_CACHE)",
)
def test_real_weights_load_strictly_and_score():
    folder, base = _real_files()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reward = create_reward("videoreward", weights={"model": str(folder), "base": str(base)}, device=device)
    assert len(reward.processor.tokenizer) == 151660
    frames, indices, num_frames = sampled(reward, videos(count=1, frames=8))
    details = reward.score_sampled_details(frames, indices, num_frames, PROMPTS[:1])
    assert all(torch.isfinite(value).all() for value in details.values())
    torch.testing.assert_close(details["overall"], details["vq"] + details["mq"] + details["ta"])
