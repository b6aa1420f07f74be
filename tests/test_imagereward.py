"""`imagereward` on tiny random checkpoints in the official layout, loaded through create_reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit import create_reward
from rewardkit.rewards.imagereward import SCORE_MEAN, SCORE_STD, UNUSED_KEYS
from rewardkit.testing import put_in_hf_cache
from rewardkit.testing.imagereward import write_bert_vocab, write_imagereward_checkpoint
from rewardkit.weights import MissingWeightsError, WeightsMismatchError

PROMPTS = ["a red cat sitting in the snow", "a dog", "a red cat sitting in the snow"]
LONG_PROMPT = " ".join(["a very detailed oil painting of a red fox in a snowy forest at dawn"] * 4)


@pytest.fixture(scope="module")
def imagereward_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder with ImageReward.pt + med_config.json, bert tokenizer folder)."""
    root = tmp_path_factory.mktemp("imagereward")
    write_imagereward_checkpoint(root / "model", seed=0)
    return root / "model", write_bert_vocab(root / "tokenizer")


@pytest.fixture(scope="module")
def build(imagereward_files):
    built = {}
    model_dir, tokenizer_dir = imagereward_files

    def make(**options):
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tokenizer_dir)}, **options)
        return built[key]

    return make


def images(seed=0, count=3, size=(3, 180, 240)):
    return torch.rand((count, *size), generator=torch.Generator().manual_seed(seed))


def _write_variant(folder: Path, source: Path, edit) -> Path:
    state_dict = torch.load(source / "ImageReward.pt", weights_only=True)
    edit(state_dict)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, folder / "ImageReward.pt")
    (folder / "med_config.json").write_text((source / "med_config.json").read_text())
    return folder


def test_scores_are_float_per_image_and_depend_on_image_and_prompt(build):
    reward = build()
    pixels = images()
    scores = reward(pixels, PROMPTS)
    assert scores.shape == (3,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert scores[0] != scores[1]
    swapped = reward(pixels[[0, 0]], [PROMPTS[0], PROMPTS[1]])
    assert swapped[0] != swapped[1], "the prompt must matter"
    uint8 = (pixels * 255).round().to(torch.uint8)
    torch.testing.assert_close(reward(uint8, PROMPTS), scores, atol=1e-6, rtol=0)


def test_tokenizer_matches_official_special_tokens(build):
    tokenizer = build().tokenizer
    assert len(tokenizer) == 30524
    assert tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523]
    assert tokenizer.bos_token == "[DEC]"
    tokens = build()._tokenize(["a red cat"])
    # The scoring path keeps [CLS] at position 0 (only BLIP's ITM/decoder paths substitute [ENC]/[DEC]).
    assert tokens.shape == (1, 2, 35)
    assert tokens[0, 0, :5].tolist() == [101] + tokenizer.convert_tokens_to_ids(["a", "red", "cat"]) + [102]
    assert tokens[0, 1].sum() == 5 and tokens[0, 0, 5:].eq(0).all()


def test_normalisation_is_the_published_one(build, imagereward_files):
    """Raw MLP output recomputed by hand from the official MLP tensors, then (r - mean) / std."""
    reward = build()
    model = reward.model
    state_dict = torch.load(imagereward_files[0] / "ImageReward.pt", weights_only=True)
    pixel_values = reward.torch_preprocess.batch(images(count=2))
    tokens = reward._tokenize(PROMPTS[:2])
    with torch.no_grad():
        image_embeds = model.vision(pixel_values=pixel_values).last_hidden_state
        assert image_embeds.shape[1] == 197, "all 196 patch tokens and the class token feed the cross-attention"
        cls = model.text(
            input_ids=tokens[:, 0], attention_mask=tokens[:, 1], encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long),
        ).last_hidden_state[:, 0]  # fmt: skip
        raw = cls
        for index in (0, 2, 4, 6, 7):  # no activations between the official Linear layers
            raw = raw @ state_dict[f"mlp.layers.{index}.weight"].T + state_dict[f"mlp.layers.{index}.bias"]
        expected = (raw[:, 0] - 0.16717362830052426) / 1.0333394966054072
        got = reward.score_preprocessed(pixel_values, PROMPTS[:2])
    assert (SCORE_MEAN, SCORE_STD) == (0.16717362830052426, 1.0333394966054072)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_gradients_reach_pixels_in_differentiable_mode(build):
    reward = build(mode="differentiable")
    pixels = images().requires_grad_(True)
    reward(pixels, PROMPTS).sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert all(not parameter.requires_grad for parameter in reward.parameters()), "rewards must stay frozen"


@pytest.mark.parametrize("mode", ["reference", "differentiable"])
def test_batch_size_invariance(build, mode):
    reward = build(mode=mode)
    pixels = images(seed=1, count=4)
    prompts = ["a cat", "a dog", LONG_PROMPT, "a cat"]
    batched = reward(pixels, prompts)
    single = torch.cat([reward(pixels[i : i + 1], [prompts[i]]) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_modes_differ_only_slightly(build):
    frames = (images(seed=2, count=2, size=(3, 256, 320)) * 255).round() / 255
    gap = (build(mode="reference")(frames, PROMPTS[:2]) - build(mode="differentiable")(frames, PROMPTS[:2])).abs()
    assert gap.max() < 0.05


def test_prompt_truncation_at_35_tokens_is_detected(build):
    reward = build()
    assert reward.max_prompt_tokens == 35
    assert reward.prompt_token_count("a cat") == 4  # [CLS] a cat [SEP]
    assert not reward.prompt_truncated("a red cat sitting in the snow")
    assert reward.prompt_token_count(LONG_PROMPT) > 35 and reward.prompt_truncated(LONG_PROMPT)
    # Everything past 35 tokens is ignored, as in the official package.
    pixels = images(count=1)
    longer = LONG_PROMPT + " with a golden castle"
    torch.testing.assert_close(reward(pixels, [LONG_PROMPT]), reward(pixels, [longer]), atol=0, rtol=0)


def test_prompts_are_tokenized_once(build, monkeypatch):
    reward = build(mode="differentiable")
    reward.text_features.clear()
    calls = []
    real = reward.text_features._encode
    monkeypatch.setattr(reward.text_features, "_encode", lambda prompts: calls.append(list(prompts)) or real(prompts))
    reward(images(), PROMPTS)
    reward(images(seed=3), PROMPTS)
    assert calls == [[PROMPTS[0], PROMPTS[1]]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda sd: sd.pop("blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"), r"1 missing"),
        (lambda sd: sd.pop("mlp.layers.7.bias"), r"1 missing"),
        (lambda sd: sd.__setitem__("blip.itm_head.weight", torch.zeros(2, 32)), r"unexpected.*blip.itm_head.weight"),
        (lambda sd: sd.__setitem__("mlp.layers.1.weight", torch.zeros(2)), r"unexpected.*mlp.layers.1.weight"),
        (lambda sd: sd.__setitem__("mlp.layers.2.weight", torch.zeros(128, 1000)), r"wrong shape"),
    ],
    ids=["missing-text", "missing-mlp", "unexpected", "unexpected-mlp", "shape"],
)
def test_checkpoint_key_mismatch_is_a_clear_error(imagereward_files, tmp_path, edit, message):
    model_dir, tokenizer_dir = imagereward_files
    folder = _write_variant(tmp_path / "bad", model_dir, edit)
    with pytest.raises(WeightsMismatchError, match=message):
        create_reward("imagereward", weights={"model": str(folder), "tokenizer": str(tokenizer_dir)})


def test_unused_official_keys_may_be_absent(imagereward_files, tmp_path, build):
    model_dir, tokenizer_dir = imagereward_files
    folder = _write_variant(tmp_path / "lean", model_dir, lambda sd: [sd.pop(key) for key in UNUSED_KEYS])
    lean = create_reward("imagereward", weights={"model": str(folder / "ImageReward.pt"), "tokenizer": str(tokenizer_dir)})
    torch.testing.assert_close(lean(images(), PROMPTS), build()(images(), PROMPTS), atol=0, rtol=0)


def test_missing_med_config_and_checkpoint_are_clear_errors(imagereward_files, tmp_path):
    _, tokenizer_dir = imagereward_files
    with pytest.raises(MissingWeightsError, match="THUDM/ImageReward"):
        create_reward("imagereward", weights={"model": str(tmp_path / "nowhere.pt"), "tokenizer": str(tokenizer_dir)})
    torch.save({}, tmp_path / "ImageReward.pt")
    with pytest.raises(MissingWeightsError, match="med_config.json"):
        create_reward("imagereward", weights={"model": str(tmp_path), "tokenizer": str(tokenizer_dir)})


def test_small_tokenizer_that_maps_words_to_unk_is_refused(imagereward_files, tmp_path):
    model_dir, _ = imagereward_files
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(MissingWeightsError, match=r"5 tokens.*30522"):
        create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tmp_path)})
    with pytest.raises(MissingWeightsError, match="does not exist"):
        create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="no vocab.txt"):
        create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tmp_path / "empty")})


def test_weights_and_tokenizer_from_hf_cache_and_clear_error_when_missing_offline(imagereward_files, hf_cache):
    model_dir, tokenizer_dir = imagereward_files
    # Nothing in the cache yet: the tokenizer is missing offline, and the error says how to supply it.
    with pytest.raises(MissingWeightsError, match=r"google-bert/bert-base-uncased.*HF_HUB_OFFLINE"):
        create_reward("imagereward", weights=str(model_dir))
    put_in_hf_cache(
        hf_cache, "google-bert/bert-base-uncased",
        {name: tokenizer_dir / name for name in ("vocab.txt", "tokenizer_config.json")},
    )  # fmt: skip
    put_in_hf_cache(
        hf_cache, "THUDM/ImageReward", {name: model_dir / name for name in ("ImageReward.pt", "med_config.json")}
    )
    reward = create_reward("imagereward")
    scores = reward(images(), PROMPTS)
    explicit = create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tokenizer_dir)})
    torch.testing.assert_close(scores, explicit(images(), PROMPTS), atol=0, rtol=0)
    assert reward.weights_sha256 == explicit.weights_sha256


def test_reference_mode_is_the_official_pil_pipeline(build):
    """PIL bicubic resize of the shortest side, centre crop, ToTensor, OpenAI mean/std."""
    from PIL import Image

    reward = build()
    frame = (np.random.default_rng(0).random((150, 260, 3)) * 255).astype(np.uint8)
    resized = Image.fromarray(frame).resize((int(224 * 260 / 150), 224), Image.BICUBIC)
    left = int(round((resized.width - 224) / 2.0))
    cropped = np.asarray(resized.crop((left, 0, left + 224, 224)), dtype=np.float32) / 255
    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    expected = torch.from_numpy(((cropped - mean) / std).transpose(2, 0, 1))
    torch.testing.assert_close(reward.reference_preprocess(frame), expected, atol=1e-6, rtol=0)


def test_differentiable_mode_is_refl_tensor_path(build):
    """ReFL.py's tensor transform before score_gard: torchvision Resize(224, BICUBIC), CenterCrop(224), Normalize."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize

    refl = Compose(
        [
            Resize(224, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(224),
            Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    pixels = images(seed=4, count=2, size=(3, 360, 512))
    torch.testing.assert_close(build(mode="differentiable").torch_preprocess.batch(pixels), refl(pixels), atol=1e-6, rtol=0)
