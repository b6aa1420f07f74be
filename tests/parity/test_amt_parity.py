"""rewardkit's ``motion_smoothness`` against VBench's own ``vbench/motion_smoothness.py`` and AMT-S code.

What is compared. One random AMT-S checkpoint in the published layout (``{"state_dict": ...}`` as
``amt-s.pth``; seed 0) is loaded by both sides, strictly. Two clips of a textured square sliding over a
textured background (5 frames 128 x 136, so both sides pad the width to 144; 6 frames 120 x 128, an even
length, so the last odd frame has no interpolated partner and the height is padded) are written as PNG
frame folders (lossless):

- official: ``MotionSmoothness(AMT-S.yaml, checkpoint, "cpu").motion_score(folder)``, VBench's class
  unchanged: it reads the folder with OpenCV, builds the network from the config with its
  ``build_from_cfg``, interpolates pair by pair and scores with its ``vfi_score``;
- rewardkit: ``create_reward("motion_smoothness", weights=checkpoint)`` on the same frames as uint8.

Also the layout itself: the official ``Model()``'s state-dict keys and shapes equal rewardkit's ``AmtS``.
Every |official - rewardkit| must be <= 1e-5. VBench's code comes from its pinned 0.1.5 wheel
(tests/parity/official_vbench.py, with the import patches it lists); without ``VBENCH_WHEEL`` the tests skip.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rewardkit import create_reward
from rewardkit.rewards.amt import AmtS
from rewardkit.testing.amt import write_amt_checkpoint
from rewardkit.testing.vbench import moving_square_clip
from tests.parity.official_vbench import remove_patches, vbench_root

pytestmark = [pytest.mark.parity]


@pytest.fixture(scope="module")
def vbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("vbench-wheel")
    root = vbench_root(folder)
    if root is None:
        pytest.skip("VBench's code is not here: set VBENCH_WHEEL to vbench-0.1.5-py3-none-any.whl (see .ci/run)")
    yield root
    remove_patches(folder)  # the stand-ins must not outlive these tests (diffusers looks for imageio)


def test_official_layout_equals_rewardkit(vbench):
    official = importlib.import_module("vbench.third_party.amt.networks.AMT-S").Model(corr_radius=3, corr_lvls=4, num_flows=3)
    shapes = {key: tuple(value.shape) for key, value in official.state_dict().items()}
    assert shapes == {key: tuple(value.shape) for key, value in AmtS().state_dict().items()}


@pytest.mark.parametrize(("frames", "height", "width"), [(5, 128, 136), (6, 120, 128)])
def test_motion_smoothness_matches_vbench(vbench, tmp_path, frames, height, width):
    checkpoint = write_amt_checkpoint(tmp_path / "amt-s.pth")
    clip = moving_square_clip(frames, height, width, speed=3.0, size=40, seed=1)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"{index:05d}.png")

    official_module = importlib.import_module("vbench.motion_smoothness")
    config = vbench / "vbench" / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"
    official = official_module.MotionSmoothness(str(config), str(checkpoint), "cpu").motion_score(str(folder))

    reward = create_reward("motion_smoothness", weights=str(checkpoint))
    ours = reward(torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)[None]).item()
    print(f"\nmotion_smoothness {frames} frames {height}x{width}: official {official:.8f} rewardkit {ours:.8f} |diff| {abs(official - ours):.2e}")
    assert abs(official - ours) <= 1e-5
