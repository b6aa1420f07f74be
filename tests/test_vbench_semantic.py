"""VBench's prompt-conditioned dimensions (rewardkit.rewards.clip: appearance_style; rewardkit.rewards.viclip: overall_consistency) on tiny random-weight checkpoints
in the official layouts, loaded through ``create_reward(name, weights=PATH)``.

References: VBench's loops written out below (vbench/appearance_style.py with ``clip_transform_Image`` on PIL
frames and ``logits_per_text / 100``; vbench/overall_consistency.py with ``read_frames_decord_by_fps(
sample="middle")``, ``clip_transform`` on uint8 frames and ViCLIP's forward written out functionally from the
official viclip_vision.py / viclip_text.py), hand-computed frame indices and token ids.
"""

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from rewardkit import create_reward
from rewardkit.rewards.viclip import VBenchMiddleFrames
from rewardkit.testing.clip import write_open_clip_config, write_open_clip_safetensors
from rewardkit.testing.vbench import (
    flicker_clip,
    moving_square_clip,
    to_video_tensor,
    viclip_state_shapes,
    write_viclip_checkpoint,
)
from rewardkit.weights import WeightsMismatchError

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vbench_semantic")
    config = write_open_clip_config(folder)
    return {
        "viclip": str(write_viclip_checkpoint(folder / "ViClip-InternVid-10M-FLT.pth")),
        "clip_config": str(config),
        "clip": str(write_open_clip_safetensors(folder / "open_clip_model.safetensors", str(config), quick_gelu=True)),
    }


@pytest.fixture(scope="module")
def viclip(files):
    return create_reward("overall_consistency", weights=files["viclip"])


# --------------------------------------------------------------------------------------- frame selection


def vbench_middle_indices(num_frames: int, vlen: int) -> list[int]:
    """vbench/utils.py get_frame_indices(num_frames, vlen, sample="middle"), written out."""
    acc_samples = min(num_frames, vlen)
    intervals = np.linspace(start=0, stop=vlen, num=acc_samples + 1).astype(int)
    ranges = [(interval, intervals[i + 1] - 1) for i, interval in enumerate(intervals[:-1])]
    frame_indices = [(x[0] + x[1]) // 2 for x in ranges]
    if len(frame_indices) < num_frames:
        padded = [frame_indices[-1]] * num_frames
        padded[: len(frame_indices)] = frame_indices
        frame_indices = padded
    return [int(i) for i in frame_indices]


def test_middle_frames_by_hand_and_against_vbench():
    sampler = VBenchMiddleFrames(8)
    # T=10: edges 0,1,2,3,5,6,7,8,10 -> parts (0,0) (1,1) (2,2) (3,4) (5,5) (6,6) (7,7) (8,9) -> middles below
    assert sampler.indices(10) == [0, 1, 2, 3, 5, 6, 7, 8]
    # T=16: parts (0,1), (2,3), ... -> the first frame of each pair ((a + a + 1) // 2 = a)
    assert sampler.indices(16) == [0, 2, 4, 6, 8, 10, 12, 14]
    # T=5 < 8: every frame, then the last repeated
    assert sampler.indices(5) == [0, 1, 2, 3, 4, 4, 4, 4]
    for length in (1, 7, 8, 9, 17, 33, 120, 241):
        assert sampler.indices(length) == vbench_middle_indices(8, length)
    with pytest.raises(ValueError, match="no frames"):
        sampler.indices(0)


# ------------------------------------------------------------------------------------ overall_consistency


def _layer_norm(x, state, prefix):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-5)


def _resblock(x, state, prefix, mask=None):
    """CLIP's ResidualAttentionBlock on [N, L, D], one head per 64 channels (the tiny checkpoint: 1 head)."""
    width = x.shape[-1]
    heads = max(1, width // 64)
    h = _layer_norm(x, state, f"{prefix}.ln_1")
    q, k, v = (h @ state[f"{prefix}.attn.in_proj_weight"].T + state[f"{prefix}.attn.in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (heads, width // heads)).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / (width // heads) ** 0.5
    if mask is not None:
        logits = logits + mask
    attended = (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)
    x = x + attended @ state[f"{prefix}.attn.out_proj.weight"].T + state[f"{prefix}.attn.out_proj.bias"]
    h = _layer_norm(x, state, f"{prefix}.ln_2") @ state[f"{prefix}.mlp.c_fc.weight"].T + state[f"{prefix}.mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    return x + h @ state[f"{prefix}.mlp.c_proj.weight"].T + state[f"{prefix}.mlp.c_proj.bias"]


def viclip_video_embedding(state, pixels):
    """viclip_vision.py VisionTransformer.forward on one video [T, 3, 224, 224]: Conv3d patches, + spatial
    position, '(b t) n m -> (b n) t m' + temporal position, one class token, ln_pre, blocks, ln_post, proj."""
    s = {k.removeprefix("vision_encoder."): v for k, v in state.items() if k.startswith("vision_encoder.")}
    x = F.conv3d(pixels.transpose(0, 1)[None], s["conv1.weight"], stride=s["conv1.weight"].shape[2:])
    _, width, frames, rows, cols = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(frames, rows * cols, width)
    x = torch.cat([s["class_embedding"].expand(frames, 1, width), x], dim=1) + s["positional_embedding"]
    cls_token, x = x[:1, :1], x[:, 1:]
    x = x.transpose(0, 1) + s["temporal_positional_embedding"]  # [(b n), t, m]
    x = torch.cat([cls_token, x.reshape(1, rows * cols * frames, width)], dim=1)
    x = _layer_norm(x, s, "ln_pre")
    layers = len({k.split(".")[2] for k in s if k.startswith("transformer.resblocks.")})
    for layer in range(layers):
        x = _resblock(x, s, f"transformer.resblocks.{layer}")
    return _layer_norm(x, s, "ln_post")[0, 0] @ s["proj"]


def viclip_text_embedding(state, tokens):
    """viclip_text.py CLIP_TEXT.forward: token + position embeddings, causal blocks, ln_final, the end
    token's (argmax id) feature times text_projection."""
    s = {k.removeprefix("text_encoder."): v for k, v in state.items() if k.startswith("text_encoder.")}
    x = s["token_embedding.weight"][tokens] + s["positional_embedding"]
    mask = torch.full((len(tokens), len(tokens)), float("-inf")).triu(1)
    layers = len({k.split(".")[2] for k in s if k.startswith("transformer.resblocks.")})
    for layer in range(layers):
        x = _resblock(x[None], s, f"transformer.resblocks.{layer}", mask)[0]
    return _layer_norm(x, s, "ln_final")[tokens.argmax()] @ s["text_projection"]


def vbench_overall_consistency(state, clip: np.ndarray, prompt: str) -> float:
    """vbench/overall_consistency.py for one video: 8 'middle' frames as uint8 tensors, clip_transform(224),
    ViCLIP video and text features L2-normalised, their dot product."""
    clip_transform = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2)[vbench_middle_indices(8, len(clip))]
    video = viclip_video_embedding(state, clip_transform(frames))
    # ViCLIP tokenizes with CLIP's BPE into 32 positions (truncated, last kept as the end token)
    tokens = open_clip.tokenize([prompt], context_length=32)[0]
    text = viclip_text_embedding(state, tokens)
    return float(F.normalize(video, dim=-1) @ F.normalize(text, dim=-1))


def test_overall_consistency_equals_viclip_written_out(files, viclip):
    state = torch.load(files["viclip"], weights_only=True)["model"]
    clips = [moving_square_clip(12, 48, 64, speed=3), flicker_clip(5, 40, 56)]
    prompts = ["a red square slides to the right", "a flickering wall"]
    scores = viclip(to_video_tensor(clips[0]), prompts[:1]).tolist() + viclip(to_video_tensor(clips[1]), prompts[1:]).tolist()
    for clip, prompt, score in zip(clips, prompts, scores, strict=True):
        assert score == pytest.approx(vbench_overall_consistency(state, clip, prompt), abs=1e-5)
    # a batch of two videos of the same length scores each as alone
    pair = to_video_tensor(clips[0], moving_square_clip(12, 48, 64, speed=1, seed=3))
    batched = viclip(pair, [prompts[0], prompts[1]])
    assert batched[0].item() == pytest.approx(scores[0], abs=1e-5)
    assert batched[1].item() == pytest.approx(viclip(pair[1:], prompts[1]).item(), abs=1e-5)
    assert viclip.weights_sha256 and len(viclip.weights_sha256) == 64


def test_temporal_style_is_the_same_computation_on_its_own_prompts(files):
    """VBench's temporal_style.py computes exactly what overall_consistency.py does (read side by side):
    the written-out ViCLIP cosine on the 8 middle frames, here with a temporal-style prompt."""
    style = create_reward("temporal_style", weights=files["viclip"])
    state = torch.load(files["viclip"], weights_only=True)["model"]
    clip = moving_square_clip(12, 48, 64, speed=3)
    prompt = "a red square slides to the right, in slow motion"
    assert style(to_video_tensor(clip), [prompt]).item() == pytest.approx(vbench_overall_consistency(state, clip, prompt), abs=1e-5)
    with pytest.raises(ValueError, match="temporal_style"):
        style(to_video_tensor(clip), None)


def test_viclip_tokens_and_truncation(viclip):
    # CLIP BPE: <start>=49406, "a"=320, "cat"=2368, <end>=49407, zero padding to ViCLIP's 32 positions
    tokens = viclip.tokenizer(["a cat"])[0]
    assert tokens[:5].tolist() == [49406, 320, 2368, 49407, 0] and len(tokens) == 32
    long = " ".join(["cat"] * 40)
    assert viclip.tokenizer([long])[0][-1].item() == 49407  # truncated, end token kept last
    assert viclip.prompt_truncated(long) and not viclip.prompt_truncated("a cat")


def test_overall_consistency_float_input_and_gradients(viclip):
    """Float [0, 1] frames are rescaled to 0..255 (equal to the uint8 path up to VBench's uint8 rounding of the
    resized frames), and gradients reach the pixels."""
    video = to_video_tensor(moving_square_clip(8, 40, 40, speed=2))
    pixels = (video.float() / 255).requires_grad_(True)
    score = viclip(pixels, "a square")
    assert score.item() == pytest.approx(viclip(video, "a square").item(), abs=2e-3)
    score.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_viclip_checkpoint_layout_is_checked(tmp_path, files):
    saved = torch.load(files["viclip"], weights_only=True)
    assert set(saved) == {"model"}
    state = saved["model"]
    official = viclip_state_shapes(vision_width=64, vision_layers=2, patch=32, text_width=64, text_layers=2, embed_dim=32)
    assert {key: tuple(value.shape) for key, value in state.items()} == official
    # the real ViT-L/14 file: 24 + 12 blocks of 12 tensors plus 15 others
    assert len(viclip_state_shapes()) == 36 * 12 + 15
    del state["text_encoder.ln_final.bias"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(WeightsMismatchError, match="ln_final.bias"):
        create_reward("overall_consistency", weights=str(tmp_path / "broken.pth"))
    torch.save({"state_dict": {"weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match="not a ViCLIP checkpoint"):
        create_reward("overall_consistency", weights=str(tmp_path / "other.pth"))


def test_prompts_are_required(files, viclip):
    style = create_reward("appearance_style", architecture=files["clip_config"], weights=files["clip"])
    video = to_video_tensor(moving_square_clip(3, 32, 32))
    for metric in (viclip, style):
        assert metric.needs_prompt
        with pytest.raises(ValueError, match="needs one prompt"):
            metric(video)
        with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
            metric(video, ["a", "b"])


# --------------------------------------------------------------------------------------- appearance_style


def vbench_appearance_style(model, clip: np.ndarray, query: str) -> float:
    """vbench/appearance_style.py for one video: every frame as PIL through clip_transform_Image(224), the
    CLIP forward's logits_per_text[0][0] (= exp(logit_scale) * cos) / 100, mean over frames."""
    image_transform = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    text = open_clip.tokenize([query])
    current = []
    with torch.no_grad():
        for frame in clip:
            image = image_transform(Image.fromarray(frame))
            image_features, text_features, logit_scale = model(image.unsqueeze(0), text)
            logits_per_text = logit_scale * text_features @ image_features.T
            current.append(float(logits_per_text[0][0]) / 100)
    return float(np.mean(current))


@pytest.mark.filterwarnings("ignore:Anti-alias option is always applied")
def test_appearance_style_equals_vbench_loop(files):
    metric = create_reward("appearance_style", architecture=files["clip_config"], weights=files["clip"])
    model = metric.clip.model
    with torch.no_grad():
        model.logit_scale.fill_(np.log(100.03))  # the OpenAI ViT-B/32 value (fp16 4.6055), not exactly 100
    clips = [moving_square_clip(4, 48, 64, speed=3), flicker_clip(3, 40, 40)]
    queries = ["Van Gogh style", "in cyberpunk style"]
    for clip, query in zip(clips, queries, strict=True):
        expected = vbench_appearance_style(model, clip, query)
        assert metric(to_video_tensor(clip), [query]).item() == pytest.approx(expected, abs=1e-6)
    assert metric.max_prompt_tokens == 77 and metric.weights_sha256 and len(metric.weights_sha256) == 64


def test_appearance_style_differentiable_mode_has_gradients(files):
    metric = create_reward("appearance_style", architecture=files["clip_config"], weights=files["clip"], mode="differentiable")
    pixels = (to_video_tensor(moving_square_clip(2, 32, 32)).float() / 255).requires_grad_(True)
    metric(pixels, "Van Gogh style").sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- engine path


def test_engine_scores_video_files_with_prompts_from_names(tmp_path, files):
    """rewardkit.scoring.score on mp4 files named VBench-style ``{prompt}-{i}.mp4``: one ok row per file and
    reward; overall_consistency equals the module called on the decoded frames."""
    from rewardkit.scoring import score
    from rewardkit.video.io import read_frames, write_video

    path = tmp_path / "a red square slides-0.mp4"
    write_video(path, moving_square_clip(12, 48, 64, speed=2))
    arguments = {"workers": 0, "progress": False, "weights": {"overall_consistency": files["viclip"], "appearance_style": files["clip"]}}
    results = score([str(path)], ["overall_consistency", f"appearance_style:architecture={files['clip_config']}"], **arguments)
    assert list(results["status"]) == ["ok", "ok"], results["error"].tolist()
    assert set(results["prompt"]) == {"a red square slides"}
    frames = torch.from_numpy(read_frames(path)).permute(0, 3, 1, 2)[None]
    metric = create_reward("overall_consistency", weights=files["viclip"])
    expected = metric(frames, "a red square slides").item()
    row = results.set_index("reward").loc["overall_consistency"]
    assert row["score"] == pytest.approx(expected, abs=1e-5)
