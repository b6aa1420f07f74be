"""GRiT (rewardkit.rewards.grit) on a tiny random checkpoint in the official layout, and VBench's readings of
its detections for object_class, multiple_objects, color and spatial_relationship.

Independent references: detectron2's ``Box2BoxTransform.apply_deltas`` and ``ROIPooler`` level rule
(``floor(4 + log2(sqrt(area) / 224))``, clamped to P3-P5, ROIAlignV2 = torchvision ``roi_align(aligned=True)``)
computed by hand here; VBench's dimension files' readings of ``run_caption_tensor``'s tuples, applied by
hand to hand-built detections (``color.py`` pairs every caption with the frame's first object name;
``spatial_relationship.py`` truncates boxes to integers); the registered rewards on a tiny GRiT built to
name every box "car" and caption it "red car", scored by hand with those rules; VBench's resize of large
frames against torchvision's ``Resize`` and OpenCV's ``resize``, which VBench calls. The parts run against VBench's own code are in
tests/parity/test_vbench_grit_parity.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import roi_align

from rewardkit import create_reward
from rewardkit.rewards import NotApplicable
from rewardkit.rewards.grit import (
    GritDetections,
    apply_box_deltas,
    dimension_score,
    load_grit,
    pool_boxes,
    vbench_resize,
)
from rewardkit.testing.grit import tiny_grit, tiny_grit_dimension, write_grit_checkpoint
from rewardkit.weights import WeightsMismatchError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny_grit(tmp_path_factory.mktemp("grit"), word="car")["weights"]


@pytest.fixture(scope="module")
def model(files):
    return load_grit(files["model"], files["tokenizer"])


@pytest.mark.slow  # ~20 s on a loaded 2-core machine: 256 boxes, each described token by token
def test_detections_on_a_frame(model):
    """The tiny model's biases make boxes certain and name every box "car" (see its writer)."""
    frames = torch.randint(0, 256, (2, 3, 48, 80), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    found = model.detect(frames, captions=True)
    assert len(found) == 2
    for frame in found:
        assert 0 < len(frame.boxes) <= 256 and frame.objects == ["car"] * len(frame.boxes) == frame.captions
        assert (frame.boxes[:, 0] >= 0).all() and (frame.boxes[:, 2] <= 80).all() and (frame.boxes[:, 3] <= 48).all()
        assert ((frame.scores > 0.5) & (frame.scores <= 1)).all() and torch.equal(frame.scores, frame.scores.sort(descending=True).values)


@pytest.mark.slow  # writes and loads the tiny checkpoint (~5 s; longer under load)
def test_loading_is_strict(tmp_path, files):
    state = torch.load(files["model"], weights_only=True)
    state["model"].pop("roi_heads.mask_head.predictor.bias")
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsMismatchError, match="mask_head.predictor.bias"):
        load_grit(tmp_path / "missing.pth", files["tokenizer"])
    torch.save({"model": {"backbone.x": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match="not a GRiT checkpoint"):
        load_grit(tmp_path / "other.pth", files["tokenizer"])
    assert write_grit_checkpoint(tmp_path / "again.pth").is_file()


def test_box_deltas_as_detectron2():
    """A 20 x 40 box centred at (20, 40); deltas (1, -1, ln 2 * 5, 0) with weights (10, 10, 5, 5): the centre
    moves by (0.1 * 20, -0.1 * 40) and the width doubles."""
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    moved = apply_box_deltas(torch.tensor([[1.0, -1.0, math.log(2) * 5, 0.0]]), box, (10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(moved, torch.tensor([[2.0, 16.0, 42.0, 56.0]]))
    huge = apply_box_deltas(torch.tensor([[0.0, 0.0, 100.0, 0.0]]), box, (1.0, 1.0, 1.0, 1.0))
    assert huge[0, 2] - huge[0, 0] == pytest.approx(20 * 1000 / 16, rel=1e-5)  # dw clamped at log(1000 / 16)


def test_pooler_levels_as_detectron2():
    """Boxes of side 112, 224 and 448 go to P3, P4 and P5 (scales 1/8, 1/16, 1/32)."""
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(1, 4, 80 // s, 80 // s, generator=generator) for s in (8, 16, 32, 64, 128)]
    boxes = torch.tensor([[0.0, 0.0, 112.0, 112.0], [8.0, 8.0, 232.0, 232.0], [0.0, 0.0, 448.0, 448.0]])
    pooled = pool_boxes(features, boxes, 7)
    for index, level in enumerate((0, 1, 2)):
        rois = torch.cat([torch.zeros(1, 1), boxes[index : index + 1]], dim=1)
        expected = roi_align(features[level], rois, 7, 1.0 / 2 ** (level + 3), 0, True)
        torch.testing.assert_close(pooled[index : index + 1], expected)


def frame(objects, boxes=None, captions=None) -> GritDetections:
    boxes = torch.tensor(boxes if boxes is not None else [[0.0, 0.0, 1.0, 1.0]] * len(objects))
    return GritDetections(boxes, torch.ones(len(objects)), list(objects), captions)


def test_object_class_and_multiple_objects_by_hand():
    frames = [frame(["car", "dog"]), frame(["car"]), frame([])]
    assert dimension_score("object_class", "car", frames) == pytest.approx(2 / 3)
    assert dimension_score("object_class", "cat", frames) == 0
    assert dimension_score("multiple_objects", "car and dog", frames) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="A and B"):
        dimension_score("multiple_objects", "car", frames)


def test_color_pairs_every_caption_with_the_first_object_name():
    """VBench's color.py reads ``cap_det[2][0]``: the frame's first object name, for every caption."""
    first_is_car = frame(["car", "dog"], captions=["a red car", "a blue dog"])
    first_is_dog = frame(["dog", "car"], captions=["a red car", "a blue dog"])
    assert dimension_score("color", "a red car", [first_is_car, first_is_car]) == 1.0
    assert math.isnan(dimension_score("color", "a red car", [first_is_dog]))  # no object frame: left out
    blue = frame(["car"], captions=["a blue car"])
    assert dimension_score("color", "a red car", [first_is_car, blue]) == 0.5  # 2 object frames, 1 red
    with pytest.raises(ValueError, match="exactly one"):
        dimension_score("color", "a car", [blue])


def test_spatial_relationship_truncates_boxes():
    """Two boxes side by side after int() (x 0-10 and 20-30): left-of scores 1; a third frame whose boxes
    overlap with IoU 1/3 scores 0.1 / (1/3) = 0.3; a frame with one object scores 0."""
    key = '{"object_a": "car", "object_b": "dog", "relationship": "on the left of"}'
    apart = frame(["car", "dog"], [[0.0, 0.0, 10.9, 10.0], [20.0, 0.0, 30.0, 10.0]])
    overlapping = frame(["car", "dog"], [[0.0, 0.0, 20.0, 10.0], [10.0, 0.0, 30.9, 10.0]])
    alone = frame(["car"])
    assert dimension_score("spatial_relationship", key, [apart, overlapping, alone]) == pytest.approx((1 + 0.3 + 0) / 3)


@pytest.fixture(scope="module")
def dimension_weights(tmp_path_factory):
    return tiny_grit_dimension(tmp_path_factory.mktemp("grit-dimension"))["weights"]


def test_registered_dimensions_by_hand(dimension_weights):
    """Every box of the tiny model is named "car" and captioned "red car" (rewardkit.testing.grit), so by
    VBench's rules: object_class "car" 1, "dog" 0; color "a red car" 1, "a blue car" 0 (the caption names a
    colour, not blue), "a red dog" has no object frame: NotApplicable, NaN. A 2-frame clip's 16 sampled
    frames (0, then 1 fifteen times) are detected as the clip's frames. (multiple_objects and
    spatial_relationship run end to end in test_vbench_suite.py and the contract tests, both slow.)"""
    clip = torch.randint(0, 256, (1, 2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    two = clip.expand(2, -1, -1, -1, -1)
    objects = create_reward("object_class", weights=dimension_weights)
    assert objects(two, ["car", "dog"]).tolist() == [1.0, 0.0]
    color = create_reward("color", weights=dimension_weights)
    assert color(two, ["a red car", "a blue car"]).tolist() == [1.0, 0.0]
    with pytest.raises(NotApplicable) as left_out:
        color(two, ["a red car", "a red dog"])
    assert left_out.value.scores[0] == 1.0 and math.isnan(left_out.value.scores[1])
    sampled = objects.detections(clip[0, [0] + [1] * 15], [0] + [1] * 15)
    assert len(sampled) == 16 and all(torch.equal(frame.boxes, sampled[1].boxes) for frame in sampled[1:])
    direct = objects.model.detect(clip[0])
    assert torch.equal(sampled[0].boxes, direct[0].boxes) and torch.equal(sampled[1].scores, direct[1].scores)


def test_labels_are_checked_before_detection(dimension_weights):
    clip = torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="JSON"):
        create_reward("spatial_relationship", weights=dimension_weights)(clip, ["a car on the left of a dog"])
    with pytest.raises(ValueError, match="exactly one"):
        create_reward("color", weights=dimension_weights)(clip, ["a car"])


def test_large_frames_resized_as_vbench():
    """Short side 800 > 768: to 720 x int(720 / 800 * 1000) = 900, as torchvision's Resize on tensors
    (antialiased bilinear; VBench's object_class, multiple_objects and spatial_relationship) and OpenCV's
    INTER_LINEAR (color), within a grey level; 768 and below stay as they are."""
    import cv2
    from torchvision.transforms.functional import resize

    frames = torch.randint(0, 256, (1, 3, 800, 1000), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ours = vbench_resize(frames, antialias=True)
    assert ours.shape == (1, 3, 720, 900)
    assert (ours.int() - resize(frames, [720, 900], antialias=True).int()).abs().max() <= 1
    theirs = torch.from_numpy(cv2.resize(frames[0].permute(1, 2, 0).numpy(), (900, 720), interpolation=cv2.INTER_LINEAR))
    assert (vbench_resize(frames, antialias=False)[0].permute(1, 2, 0).int() - theirs.int()).abs().max() <= 1
    small = frames[..., :768, :900]
    assert vbench_resize(small, antialias=True) is small
