"""rewardkit's ``human_action`` against VBench's own ``vbench/human_action.py`` and UMT code.

What is compared. One random UMT checkpoint in the published layout (a flat float16 state dict without
``pos_embed``, as ``l16_ptk710_ftk710_ftk400_f16_res224.pth``; 128 wide, so 2 heads, 2 blocks, 400 classes)
is loaded by both sides. Two H.264 clips (20 frames 96 x 128: upscaled to 256 x 341, crop offset 58.5
rounded to even; 10 frames 330 x 256: portrait, short side already 256 so not resized, fewer than 16 frames
so the last is repeated) are named ``A person is <action>-0.mp4``, the first after the class UMT ranks first
for it and the second after one it ranks 201st, so the top-5 rule says yes once and no once:

- official: ``vbench.human_action.human_action(checkpoint, paths, "cpu")``, VBench's function unchanged: it
  ``torch.load``s the file into its ``VisionTransformer`` (``strict=False``), reads 16 "middle" frames with
  its ``load_video``, applies UMT's ``Compose([Resize(256), CenterCrop(224), ClipToTensor(), Normalize])``,
  takes the sigmoid's top 5 and parses the label from the file name; the logits are recorded by a forward
  hook;
- rewardkit: ``create_reward("human_action", weights=...)`` with VBench's own ``kinetics_400_categories.txt``
  from the wheel, on the same decoded frames.

Every class probability must agree within 1e-5 and every per-video verdict exactly. Also the layout: VBench's
full-size ``vit_large_patch16_224`` (built on the meta device) has rewardkit's ``UmtClassifier`` keys and
shapes plus ``pos_embed``, which the published file lacks (VBench then keeps its fixed table; a second test
gives both sides a checkpoint that carries one).

Compatibility patches (only here, undone after the module; ``tests/parity/official_vbench.py`` lists the
common ones):

- ``decord`` (imported by ``vbench/utils.py``) is a stand-in whose ``VideoReader`` returns the frames
  rewardkit's ``read_frames`` decodes, so both sides see identical pixels; the real ``vbench/utils.py``
  (``load_video``, ``get_frame_indices``) replaces the package's stub for these tests.
- ``vbench.third_party.umt.datasets`` and ``.models`` are bare namespaces: their ``__init__`` files import
  the training datasets (decord, ``numpy.lib.function_base``, gone in NumPy 2) and every pretraining model.
- ``modeling_finetune`` is imported with timm's ``register_model`` as the identity: otherwise it overwrites
  timm's own ``vit_large_patch16_224`` (and its pretrained configs) for the rest of the process.
- ``human_action.create_model`` builds ``modeling_finetune.VisionTransformer`` with the recipe of VBench's
  ``vit_large_patch16_224`` and VBench's arguments, at the tiny width and depth.
- ``clip`` (imported by ``human_action.py``, unused) is an empty module when openai-clip is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from torch import nn

from rewardkit import create_reward
from rewardkit.rewards.umt import UmtClassifier
from rewardkit.testing.umt import write_umt_checkpoint
from rewardkit.testing.vbench import moving_square_clip
from rewardkit.video.io import read_frames, write_video
from tests.parity.official_vbench import remove_patches, vbench_root

pytestmark = [pytest.mark.parity]

WIDTH, DEPTH = 128, 2
UMT = "vbench.third_party.umt"
# human_action.py's create_model arguments, less drop_block_rate=None (timm's create_model drops None values).
ARGUMENTS = {
    "num_classes": 400, "all_frames": 16, "tubelet_size": 1, "use_learnable_pos_emb": False, "fc_drop_rate": 0.0,
    "drop_rate": 0.0, "drop_path_rate": 0.2, "attn_drop_rate": 0.0, "use_checkpoint": False, "checkpoint_num": 16,
    "use_mean_pooling": True, "init_scale": 0.001,
}


class _Batch:
    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def asnumpy(self) -> np.ndarray:
        return self.frames


class _VideoReader:
    """decord.VideoReader as vbench/utils.py uses it (length, get_batch().asnumpy()), over rewardkit's frames."""

    def __init__(self, path: str, width: int | None = None, height: int | None = None, num_threads: int = 0) -> None:
        if width or height:
            raise NotImplementedError("the decord stand-in does not resize")
        self.frames = read_frames(path)

    def __len__(self) -> int:
        return len(self.frames)

    def get_batch(self, indices) -> _Batch:
        return _Batch(self.frames[list(indices)])


def _install(root: Path) -> dict[str, types.ModuleType | None]:
    """The patches above; returns the previous sys.modules entries to restore."""
    names = ["decord", "vbench.utils", f"{UMT}.datasets", f"{UMT}.models", "clip"]
    previous = {name: sys.modules.get(name) for name in names}
    decord = types.ModuleType("decord")
    decord.VideoReader = _VideoReader
    decord.cpu = lambda index=0: None
    decord.bridge = types.SimpleNamespace(set_bridge=lambda name: None)
    sys.modules["decord"] = decord
    if importlib.util.find_spec("clip") is None:
        sys.modules["clip"] = types.ModuleType("clip")
    for name in ("datasets", "models"):
        package = types.ModuleType(f"{UMT}.{name}")
        package.__path__ = [str(root / "vbench" / "third_party" / "umt" / name)]
        sys.modules[f"{UMT}.{name}"] = package

    handlers, level = logging.root.handlers[:], logging.root.level  # vbench/utils.py calls logging.basicConfig
    spec = importlib.util.spec_from_file_location("vbench.utils", root / "vbench" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    sys.modules["vbench.utils"] = utils
    spec.loader.exec_module(utils)
    logging.root.handlers[:], logging.root.level = handlers, level

    import timm.models.registry

    register = timm.models.registry.register_model
    timm.models.registry.register_model = lambda fn: fn
    try:
        importlib.import_module(f"{UMT}.models.modeling_finetune")
    finally:
        timm.models.registry.register_model = register
    return previous


@pytest.fixture(scope="module")
def vbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("vbench-wheel")
    root = vbench_root(folder)
    if root is None:
        pytest.skip("VBench's code is not here: set VBENCH_WHEEL to vbench-0.1.5-py3-none-any.whl (see .ci/run)")
    previous = _install(root)
    yield root
    for name, module in previous.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    remove_patches(folder)


def official_human_action(monkeypatch: pytest.MonkeyPatch, checkpoint: Path, paths: list[Path]) -> tuple[float, list[dict], torch.Tensor, list]:
    """VBench's human_action on ``paths``: its accuracy, per-video results, the logits its model produced and
    the keys its ``load_state_dict(strict=False)`` reported as (missing, unexpected)."""
    module = importlib.import_module("vbench.human_action")
    finetune = importlib.import_module(f"{UMT}.models.modeling_finetune")
    logits: list[torch.Tensor] = []
    loads: list = []

    def create_model(name: str, pretrained: bool = False, **kwargs):
        assert name == "vit_large_patch16_224" and not pretrained
        kwargs = {key: value for key, value in kwargs.items() if value is not None}  # as timm's create_model
        model = finetune.VisionTransformer(
            patch_size=16, embed_dim=WIDTH, depth=DEPTH, num_heads=WIDTH // 64, mlp_ratio=4, qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), **kwargs,
        )
        model.register_forward_hook(lambda _module, _inputs, output: logits.append(output.detach().clone()))
        load = model.load_state_dict

        def recording_load(state_dict, strict=True):
            result = load(state_dict, strict=strict)
            loads.append((sorted(result.missing_keys), sorted(result.unexpected_keys)))
            return result

        model.load_state_dict = recording_load
        return model

    monkeypatch.setattr(module, "create_model", create_model)
    accuracy, results = module.human_action(str(checkpoint), [str(path) for path in paths], "cpu")
    return accuracy, results, torch.cat(logits), loads


def rewardkit_probabilities(reward, path: Path) -> torch.Tensor:
    """rewardkit's class probabilities of one file: its sampler's 16 indices of the decoded frames."""
    frames = torch.from_numpy(read_frames(path)).permute(0, 3, 1, 2)
    return reward.class_probabilities(frames[reward.frame_indices(len(frames))[0]][None])[0]


def name_after(folder: Path, clip: np.ndarray, reward, rank: int) -> tuple[Path, torch.Tensor]:
    """Write ``clip`` as ``A person is <the class UMT ranks rank-th for it>-0.mp4`` (VBench's naming) in its own
    folder; returns the path and rewardkit's class probabilities of the file."""
    folder.mkdir()
    draft = folder / "draft.mp4"
    write_video(draft, clip)
    probabilities = rewardkit_probabilities(reward, draft)
    label = reward.classes[int(probabilities.argsort(descending=True)[rank])]
    return draft.rename(folder / f"A person is {label}-0.mp4"), probabilities


def test_official_layout_equals_rewardkit(vbench):
    """VBench's vit_large_patch16_224 as human_action.py builds it, full size (parameters on the meta device)."""
    finetune = importlib.import_module(f"{UMT}.models.modeling_finetune")
    with init_empty_weights():  # parameters on the meta device (VBench's init calls .item(), so not all of it)
        official = finetune.vit_large_patch16_224(**ARGUMENTS)
    with torch.device("meta"):
        ours = UmtClassifier()
    official_shapes = {key: tuple(value.shape) for key, value in official.state_dict().items()}
    assert official_shapes.pop("pos_embed") == tuple(ours.pos_embed.shape)
    assert official_shapes == {key: tuple(value.shape) for key, value in ours.state_dict().items()}


def test_human_action_matches_vbench(vbench, tmp_path, monkeypatch):
    checkpoint = write_umt_checkpoint(tmp_path / "l16_ptk710_ftk710_ftk400_f16_res224.pth", width=WIDTH, depth=DEPTH)
    classes = vbench / "vbench" / "third_party" / "umt" / "kinetics_400_categories.txt"
    reward = create_reward("human_action", weights={"model": str(checkpoint), "classes": str(classes)})
    first = name_after(tmp_path / "a", moving_square_clip(20, 96, 128, speed=3.0, size=32, seed=1), reward, 0)
    second = name_after(tmp_path / "b", moving_square_clip(10, 330, 256, speed=5.0, size=60, seed=2), reward, 200)
    paths, ours = [first[0], second[0]], torch.stack([first[1], second[1]])

    accuracy, results, logits, loads = official_human_action(monkeypatch, checkpoint, paths)
    assert loads == [(["pos_embed"], [])]  # the published layout: everything but the fixed positions

    difference = (torch.sigmoid(logits) - ours).abs().max().item()
    verdicts = []
    for path in paths:  # the whole reward, from the frames to the verdict on the prompt in the file name
        frames = torch.from_numpy(read_frames(path)).permute(0, 3, 1, 2)[None]
        verdicts.append(bool(reward(frames, [path.stem.rsplit("-", 1)[0]]).item()))
    print(f"\nhuman_action: max |official - rewardkit| probability {difference:.2e}; verdicts official "
          f"{[row['video_results'] for row in results]} rewardkit {verdicts}")
    assert difference <= 1e-5
    assert [row["video_results"] for row in results] == verdicts == [True, False]
    assert accuracy == pytest.approx(sum(verdicts) / len(verdicts))


def test_a_checkpoint_with_its_own_positions_matches_vbench(vbench, tmp_path, monkeypatch):
    """A file that carries pos_embed: VBench loads it over its table; rewardkit uses it too."""
    checkpoint = write_umt_checkpoint(tmp_path / "umt.pth", width=WIDTH, depth=DEPTH, seed=1, pos_embed=True)
    classes = vbench / "vbench" / "third_party" / "umt" / "kinetics_400_categories.txt"
    reward = create_reward("human_action", weights={"model": str(checkpoint), "classes": str(classes)})
    path, ours = name_after(tmp_path / "a", moving_square_clip(16, 112, 144, speed=3.0, size=40, seed=4), reward, 0)
    _, results, logits, loads = official_human_action(monkeypatch, checkpoint, [path])
    assert loads == [([], [])]
    difference = (torch.sigmoid(logits[0]) - ours).abs().max().item()
    print(f"\nhuman_action with pos_embed: max |official - rewardkit| probability {difference:.2e}")
    assert difference <= 1e-5 and results[0]["video_results"] is True
