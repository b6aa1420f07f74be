"""Model rewards on tiny random-weight checkpoints in the official layouts, loaded through create_reward.

What every reward must do (shape, dtype, uint8, gradients, bad input) is in test_contract.py; here: the
open_clip-family image rewards against independent computations, and their own behaviour."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from rewardkit import PerFrameReward, Segmental, TemporalAttenuation, create_reward

PROMPTS = ["a red circle on a blue background", "a cat", "a red circle on a blue background"]
LONG_PROMPT = " ".join(["a very long and detailed description of a beautiful landscape"] * 12)


def images(seed=0, count=3, size=(3, 96, 128)):
    return torch.rand((count, *size), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def build(tiny_rewards):
    built = {}

    def make(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in built:
            built[key] = create_reward(name, **tiny_rewards[name], **options)
        return built[key]

    return make


def test_gradients_reach_pixels_through_video_reward(build):
    video_reward = PerFrameReward(build("hpsv2", mode="differentiable"), Segmental(4, "random"), TemporalAttenuation(1.0))
    videos = torch.rand(2, 16, 3, 64, 64, requires_grad=True)
    video_reward(videos, ["a cat", "a dog"], rng=np.random.default_rng(0)).sum().backward()
    touched = (videos.grad.abs().sum(dim=(2, 3, 4)) > 0).sum(dim=1)
    assert touched.tolist() == [4, 4], "exactly the 4 sampled frames of each video receive gradient"


def test_video_reward_equals_hand_composition(build):
    reward = build("hpsv2")
    videos = (torch.rand(2, 16, 3, 48, 64) * 255).to(torch.uint8)
    video_reward = PerFrameReward(reward, Segmental(4, "first"), TemporalAttenuation(1.0))
    got = video_reward(videos, ["a cat", "a dog"])
    for video, prompt, value in zip(videos, ["a cat", "a dog"], got, strict=True):
        frame_scores = reward(video[[0, 4, 8, 12]], [prompt] * 4)
        weights = torch.exp(-torch.tensor([8.0, 4.0, 0.0, 4.0]))
        assert value.item() == pytest.approx((weights * frame_scores).sum().item() / 4, abs=1e-6)


def test_hpsv2_equals_direct_open_clip_computation(build, hps_checkpoint, tiny_clip_config):
    """Independent path: open_clip model + HPS state dict + hand-written HPS transform (ToTensor, longest side
    224 via torchvision resize, centred zero pad, normalise) -> cosine."""
    import torchvision.transforms.functional as TF

    reward = build("hpsv2")
    open_clip.add_model_config(tiny_clip_config)
    model = open_clip.create_model(tiny_clip_config.stem, pretrained=None)
    model.load_state_dict(torch.load(hps_checkpoint, weights_only=True)["state_dict"])
    model.eval()
    tokenizer = open_clip.get_tokenizer(tiny_clip_config.stem)
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8))
    tensor = TF.to_tensor(pil)
    new_size = [round(90 * 224 / 160), 224]
    resized = TF.resize(tensor, new_size, TF.InterpolationMode.BICUBIC)
    pad_h = 224 - new_size[0]
    padded = TF.pad(resized, [0, pad_h // 2, 0, pad_h - pad_h // 2], fill=0)
    normalized = TF.normalize(padded, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    with torch.no_grad():
        expected = (model.encode_image(normalized[None], normalize=True) * model.encode_text(tokenizer(["a cat"]), normalize=True)).sum()
    got = reward(torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None], ["a cat"])
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_pickscore_equals_direct_transformers_computation(build, pickscore_folders):
    """PickScore's README computation: processor (PIL backend) + CLIPModel + logit_scale.exp() * cos."""
    from transformers import AutoTokenizer, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    model_dir, processor_dir = pickscore_folders
    model = CLIPModel.from_pretrained(model_dir).eval()
    image_processor = CLIPImageProcessorPil.from_pretrained(processor_dir)
    tokenizer = AutoTokenizer.from_pretrained(processor_dir)
    rng = np.random.default_rng(1)
    pils = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in [(300, 200, 3), (128, 512, 3)]]
    prompt = "a red circle on a blue background"
    with torch.no_grad():
        image_inputs = image_processor(images=pils, return_tensors="pt")
        text_inputs = tokenizer(prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
        image_embs = model.get_image_features(**image_inputs).pooler_output
        image_embs = image_embs / image_embs.norm(dim=-1, keepdim=True)
        text_embs = model.get_text_features(**text_inputs).pooler_output
        text_embs = text_embs / text_embs.norm(dim=-1, keepdim=True)
        expected = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
    reward = build("pickscore")
    got = torch.cat([reward(torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None], [prompt]) for pil in pils])
    assert torch.allclose(got, expected, atol=1e-5)


def test_clip_equals_open_clip_pipeline_and_score_forms(build, clip_checkpoint, tiny_clip_config):
    """Independent path: open_clip's own eval transform and encoders; then the three score forms by hand."""
    from safetensors.torch import load_file

    open_clip.add_model_config(tiny_clip_config)
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip_config.stem, pretrained=None)
    model.load_state_dict(load_file(str(clip_checkpoint)))
    model.eval()
    tokenizer = open_clip.get_tokenizer(tiny_clip_config.stem)
    pil = Image.fromarray(np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    with torch.no_grad():
        image = model.encode_image(preprocess(pil)[None], normalize=True)
        cosine = (image * model.encode_text(tokenizer(["a cat"]), normalize=True)).sum().item()
        hessel_cosine = (image * model.encode_text(tokenizer(["A photo depicts a cat"]), normalize=True)).sum().item()
    pixels = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None]
    assert build("clip")(pixels, ["a cat"]).item() == pytest.approx(cosine, abs=1e-6)
    assert build("clip", form="x100")(pixels, ["a cat"]).item() == pytest.approx(max(100 * cosine, 0), abs=1e-4)
    assert build("clip", form="hessel")(pixels, ["a cat"]).item() == pytest.approx(2.5 * max(hessel_cosine, 0), abs=1e-6)


@pytest.mark.parametrize("name", ["hpsv2", "clip", "pickscore"])
def test_each_prompt_is_encoded_once(build, name):
    reward = build(name)
    reward.text_features.clear()
    encoded = []
    original = reward.text_features._encode
    reward.text_features._encode = lambda prompts: encoded.extend(prompts) or original(prompts)
    try:
        reward(images(), PROMPTS)
        reward(images(1), PROMPTS)
    finally:
        reward.text_features._encode = original
    assert sorted(encoded) == sorted(set(PROMPTS))


@pytest.mark.parametrize("name", ["hpsv2", "clip", "pickscore", "aesthetic"])
@pytest.mark.parametrize("mode", ["reference", "differentiable"])
def test_scores_do_not_depend_on_batch_size(build, name, mode):
    reward = build(name, mode=mode)
    pixels, prompts = images(count=5), ["a cat", "a dog", "a cat", "a bird", "a dog"]
    together = reward(pixels, prompts)
    one_by_one = torch.cat([reward(pixels[i : i + 1], prompts[i : i + 1]) for i in range(5)])
    assert torch.allclose(together, one_by_one, atol=1e-5)


@pytest.mark.parametrize("name", ["hpsv2", "clip", "pickscore"])
def test_reference_and_differentiable_modes_agree_closely(build, name):
    # The gap is documented in the README (benchmarks/report_gap.py); here: same pipeline, small gap.
    pixels = images(count=4, size=(3, 150, 200))
    gap = (build(name)(pixels, PROMPTS + ["x"]) - build(name, mode="differentiable")(pixels, PROMPTS + ["x"])).abs()
    scale = {"pickscore": 100.0}.get(name, 1.0)
    assert gap.max().item() < 5e-3 * scale


@pytest.mark.parametrize("name", ["hpsv2", "clip", "pickscore"])
def test_long_prompts_are_detected_as_truncated(build, name):
    reward = build(name)
    assert reward.prompt_truncated(LONG_PROMPT) and not reward.prompt_truncated("a cat")
    assert torch.isfinite(reward(images(count=1), [LONG_PROMPT])).all()


@pytest.mark.parametrize(
    ("pixels", "prompts", "message"),
    [
        (torch.rand(3, 32, 32), ["a"], r"batched \[B, 3, H, W\].*pixels\[None\]"),
        (torch.rand(1, 1, 32, 32), ["a"], "3 colour channels.*repeat the grey channel"),
        (torch.rand(1, 4, 32, 32), ["a"], "3 colour channels.*alpha"),
        (torch.rand(1, 2, 3, 32, 32), ["a"], "PerFrameReward"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.int32), ["a"], "float in \\[0, 1\\] or uint8"),
        (torch.rand(2, 3, 32, 32), ["a"], "got 1 prompts for a batch of 2"),
        (torch.rand(1, 3, 32, 32), None, "needs one prompt per item"),
    ],
)
def test_bad_input_is_a_clear_value_error(build, pixels, prompts, message):
    with pytest.raises(ValueError, match=message):
        build("hpsv2")(pixels, prompts)


@pytest.mark.parametrize("size", [(1, 1), (3000, 4000), (7, 301)])
def test_extreme_image_sizes(build, size):
    pixels = torch.rand(1, 3, *size)
    assert torch.isfinite(build("hpsv2")(pixels, ["a cat"])).all()
    assert torch.isfinite(build("pickscore")(pixels, ["a cat"])).all()
