"""`aesthetic`: LAION aesthetic predictor v2 and VBench's aesthetic head, on tiny checkpoints in the official
layouts (tiny open_clip backbone, embed 32; heads written by rewardkit.testing.write_aesthetic_head)."""

import shutil

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from PIL import Image

from rewardkit import create_reward
from rewardkit.cli import main
from rewardkit.rewards.aesthetic import AESTHETIC_HEADS
from rewardkit.testing.clip import write_aesthetic_head
from rewardkit.weights import MissingWeightsError, WeightsMismatchError, cached_weight_path

SHAPES = [(200, 300, 3), (300, 200, 3), (224, 224, 3), (31, 97, 3), (480, 640, 3)]


def _with_head(tiny_rewards, head):
    """The tiny reward's weights with another head file (the backbone stays the tiny one)."""
    return {**tiny_rewards["aesthetic"]["weights"], "head": str(head)}


@pytest.fixture(scope="module")
def build(tiny_rewards, aesthetic_heads):
    built = {}

    def make(head="laion", **options):
        key = (head, tuple(sorted(options.items())))
        if key not in built:
            arguments = {**tiny_rewards["aesthetic"], "weights": _with_head(tiny_rewards, aesthetic_heads[head]), **options}
            built[key] = create_reward("aesthetic", head=head, **arguments)
        return built[key]

    return make


@pytest.fixture(scope="module")
def open_clip_model(clip_checkpoint, tiny_clip_config):
    from safetensors.torch import load_file

    open_clip.add_model_config(tiny_clip_config)
    model = open_clip.create_model(tiny_clip_config.stem, pretrained=None)
    model.load_state_dict(load_file(str(clip_checkpoint)))
    return model.eval()


def pictures(seed=0):
    rng = np.random.default_rng(seed)
    smooth = [rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8) for h, w, _ in SHAPES]
    return [np.array(Image.fromarray(s).resize((w, h), Image.BILINEAR)) for s, (h, w, _) in zip(smooth, SHAPES, strict=True)]


def as_tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture).permute(2, 0, 1)[None]


def test_laion_equals_the_official_computation(build, open_clip_model, aesthetic_heads):
    """simple_inference.py written out: clip.load's preprocess (PIL Resize(224, bicubic), CenterCrop, RGB,
    ToTensor, Normalize), encode_image, numpy ``normalized`` (L2, zero norm -> 1), then the MLP as plain
    matrix products of the state dict (no activations), loaded with map_location since it was saved on cuda."""
    from torchvision import transforms

    preprocess = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        lambda image: image.convert("RGB"),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    state = torch.load(aesthetic_heads["laion"], map_location="cpu", weights_only=True)
    reward = build("laion")
    for picture in pictures():
        with torch.no_grad():
            features = open_clip_model.encode_image(preprocess(Image.fromarray(picture))[None]).numpy()
        norm = np.atleast_1d(np.linalg.norm(features, 2, -1))
        norm[norm == 0] = 1
        x = features / np.expand_dims(norm, -1)
        for index in (0, 2, 4, 6, 7):
            x = x @ state[f"layers.{index}.weight"].numpy().T + state[f"layers.{index}.bias"].numpy()
        assert reward(as_tensor(picture)).item() == pytest.approx(float(x[0, 0]), abs=1e-5)


def test_vbench_equals_the_official_computation(build, open_clip_model, aesthetic_heads):
    """vbench/aesthetic_quality.py written out: frames as a float tensor, clip_transform(224) (tensor
    Resize(224, bicubic, antialias=False), CenterCrop, /255, Normalize), encode_image, F.normalize,
    nn.Linear(768, 1) (here 32), /10; a video's score is the mean over all its frames."""
    from torchvision import transforms

    clip_transform = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    linear = torch.nn.Linear(32, 1)
    linear.load_state_dict(torch.load(aesthetic_heads["vbench"], map_location="cpu", weights_only=True))
    reward = build("vbench")
    video = np.stack([pictures(seed)[4] for seed in range(3)])  # 3 frames of 480 x 640
    with torch.no_grad():
        frames = clip_transform(torch.Tensor(video).permute(0, 3, 1, 2))
        features = torch.nn.functional.normalize(open_clip_model.encode_image(frames).float(), dim=-1, p=2)
        expected = linear(features).squeeze(dim=-1) / 10
    got = reward(torch.from_numpy(video).permute(0, 3, 1, 2))
    assert torch.allclose(got, expected, atol=1e-5)
    assert got.mean().item() == pytest.approx(expected.mean().item(), abs=1e-5)


@pytest.mark.parametrize("head", ["laion", "vbench"])
def test_gradients_reach_pixels_and_weights_stay_frozen(build, head):
    reward = build(head, mode="differentiable")
    pixels = torch.rand(2, 3, 120, 160, requires_grad=True)
    reward(pixels).sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    assert all(not parameter.requires_grad for parameter in reward.parameters())


def test_reference_and_differentiable_modes_agree_closely(build):
    # laion: PIL vs torch bicubic (documented gap, README); vbench: one torch pipeline, so uint8 input gives
    # identical model inputs in both modes.
    images = torch.cat([as_tensor(pictures(seed)[0]) for seed in range(2)])
    laion_gap = (build("laion")(images) - build("laion", mode="differentiable")(images)).abs()
    assert laion_gap.max().item() < 0.05  # scores ~5
    vbench_gap = (build("vbench")(images) - build("vbench", mode="differentiable")(images)).abs()
    assert vbench_gap.max().item() < 1e-6


def test_prompts_are_ignored_and_not_needed(build):
    reward = build("laion")
    pixels = torch.rand(2, 3, 64, 64)
    assert not reward.needs_prompt
    assert torch.equal(reward(pixels), reward(pixels, ["a cat", "a dog"]))


def test_head_saved_on_cuda_loads_on_cpu(aesthetic_heads, build):
    """The official LAION file's storages are tagged cuda:0; the fixture reproduces that."""
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(aesthetic_heads["laion"], weights_only=True)
    assert build("laion").head.layers[0].weight.device.type == "cpu"


def _head_variant(tmp_path, name, edit):
    state = torch.load(write_aesthetic_head(tmp_path / "h.pth", "laion", embed_dim=32), map_location="cpu", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / name)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("layers.7.bias"), r"1 missing \(e.g. layers.7.bias\)"),
        (lambda s: s.__setitem__("layers.8.weight", torch.zeros(1)), r"1 unexpected \(e.g. layers.8.weight\)"),
        (lambda s: s.__setitem__("layers.2.weight", torch.zeros(64, 1024)), "wrong shape"),
    ],
    ids=["missing", "unexpected", "wrong-hidden-shape"],
)
def test_bad_head_checkpoints_are_clear_errors(tmp_path, tiny_rewards, edit, message):
    path = _head_variant(tmp_path, "bad.pth", edit)
    with pytest.raises(WeightsMismatchError, match=message):
        create_reward("aesthetic", **{**tiny_rewards["aesthetic"], "weights": _with_head(tiny_rewards, path)})


def test_head_width_must_match_the_backbone(tmp_path, tiny_rewards):
    # A real-size head (768 inputs) with the tiny backbone (32-dim embeddings).
    path = write_aesthetic_head(tmp_path / "sac+logos+ava1-l14-linearMSE.pth", "laion", embed_dim=768)
    with pytest.raises(WeightsMismatchError, match=r"takes 768-dim image embeddings.*produces 32-dim"):
        create_reward("aesthetic", **{**tiny_rewards["aesthetic"], "weights": _with_head(tiny_rewards, str(path))})


def test_swapped_head_files_say_which_head_they_are(tiny_rewards, aesthetic_heads):
    with pytest.raises(WeightsMismatchError, match=r"keys of the 'vbench' head.*head=vbench"):
        create_reward("aesthetic", **{**tiny_rewards["aesthetic"], "weights": _with_head(tiny_rewards, str(aesthetic_heads["vbench"]))})
    with pytest.raises(WeightsMismatchError, match=r"keys of the 'laion' head.*head=laion"):
        create_reward("aesthetic", head="vbench", **tiny_rewards["aesthetic"])


def test_a_checkpoint_that_is_not_a_state_dict(tmp_path, tiny_rewards):
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(WeightsMismatchError, match="not an aesthetic head.*flat state dict"):
        create_reward("aesthetic", **{**tiny_rewards["aesthetic"], "weights": _with_head(tiny_rewards, str(tmp_path / "tensor.pth"))})


@pytest.mark.parametrize(("head", "filename", "size"), [
    ("laion", "sac+logos+ava1-l14-linearMSE.pth", "3.71 MB"),
    ("vbench", "sa_0_4_vit_l_14_linear.pth", "3.08 kB"),
])
def test_missing_weights_offline_name_both_files_sizes_and_remedies(head, filename, size):
    with pytest.raises(MissingWeightsError) as raised:
        create_reward("aesthetic", head=head)
    message = str(raised.value)
    for expected in (filename, size, AESTHETIC_HEADS[head].url, "HF_HUB_OFFLINE", "rewardkit download aesthetic",
                     "--weights PATH", "open_clip_model.safetensors", "1.71 GB",
                     "timm/vit_large_patch14_clip_224.openai", "--weights aesthetic.backbone=PATH"):
        assert expected in message


def test_head_is_found_in_the_rewardkit_cache(tiny_rewards, aesthetic_heads):
    """The user path without weights=: the head at its download location in REWARDKIT_CACHE, sha256 checked."""
    weight = AESTHETIC_HEADS["laion"]
    assert cached_weight_path(weight) is None
    from rewardkit.weights import url_cache_path

    target = url_cache_path(weight)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(aesthetic_heads["laion"], target)
    try:
        backbone = tiny_rewards["aesthetic"]["weights"]["backbone"]
        options = {**tiny_rewards["aesthetic"], "weights": {"backbone": backbone}}
        # The tiny file is not the published one: the pinned sha256 catches it.
        with pytest.raises(WeightsMismatchError, match="21dd590f"):
            create_reward("aesthetic", **options)
    finally:
        target.unlink()


def test_cli_scores_every_file_including_ones_without_prompts(capsys, tmp_path, tiny_rewards):
    media = tmp_path / "media"
    shutil.copytree("examples/videos", media)
    Image.fromarray(np.full((40, 60, 3), 90, dtype=np.uint8)).save(media / "untitled.png")  # no prompt anywhere
    options = tiny_rewards["aesthetic"]
    out = tmp_path / "results.csv"
    code = main([
        "score", str(media), "--reward", f"aesthetic:architecture={options['architecture']}",
        "--weights", f"aesthetic={options['weights']['head']}", "--weights", f"aesthetic.backbone={options['weights']['backbone']}", "--out", str(out), "--no-progress", "--workers", "0",
    ])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv(out)
    assert len(rows) == 6 and (rows["status"] == "ok").all() and rows["score"].notna().all()
    assert rows.loc[rows["path"].str.endswith("untitled.png"), "prompt"].isna().all()
    assert rows["weights_sha256"].str.fullmatch(r"[0-9a-f]{64}\+[0-9a-f]{64}").all()


def test_list_shows_aesthetic(capsys):
    assert main(["list", "--format", "csv"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("aesthetic,"))
    assert row.startswith("aesthetic,image,no,yes,")
    assert "christophschuhmann/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth (raw.githubusercontent.com)" in row
    assert "timm/vit_large_patch14_clip_224.openai/open_clip_model.safetensors" in row
    assert "3.71 MB" in row and "1.71 GB" in row and "Apache-2.0" in row and "MIT" in row
