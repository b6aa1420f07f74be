"""VBench's semantic-dimension rules (rewardkit.rewards.vbench_rules) on hand-built cases.

Each expected value is worked out by hand from VBench's code (commit 45e79ec): human_action.py's top-5
loop, scene.py / object_class.py / multiple_objects.py / color.py ``check_generate`` and
spatial_relationship.py ``get_position_score`` / ``check_generate``, quirks included.
"""

from __future__ import annotations

import pytest

from rewardkit.rewards.vbench_rules import (
    action_label,
    color_counts,
    color_object,
    human_action_correct,
    multiple_objects_frames,
    object_class_frames,
    position_score,
    scene_frames,
    spatial_frame_scores,
)

CLASSES = ["Riding a bike", "surfing water", "dancing ballet", "juggling balls", "archery", "yoga", "skiing"]


def test_action_label_from_vbench_file_names():
    assert action_label("videos/A person is riding a bike-0.mp4") == "riding a bike"
    assert action_label("A person is surfing water_extra-3.mp4") == "surfing water"  # cut at "_"


def test_top5_rule():
    # Correct class 3rd by score and >= 0.85: correct.
    assert human_action_correct([0.9, 0.2, 0.95, 0.1, 0.0, 0.86, 0.3], CLASSES, "riding a bike")
    # 0.84996 rounds to 0.85 (kept), 0.84994 rounds to 0.8499 (dropped).
    assert human_action_correct([0.84996, 0, 0, 0, 0, 0, 0], CLASSES, "riding a bike")
    assert not human_action_correct([0.84994, 0, 0, 0, 0, 0, 0], CLASSES, "riding a bike")
    # Above the threshold but 6th by score: outside the top 5.
    assert not human_action_correct([0.90, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99], CLASSES, "riding a bike")
    with pytest.raises(ValueError, match="one score per class"):
        human_action_correct([0.9], CLASSES, "riding a bike")


def test_scene_words_are_substrings_of_the_caption():
    captions = ["a snowy mountain range", "mountains at dusk", "a mountain lake with snow", "a city street"]
    # "mountain" occurs in 3 captions ("mountains" contains it); "snow mountain" needs both words: 2.
    assert scene_frames("mountain", captions) == 3
    assert scene_frames("snow mountain", captions) == 2


def test_object_and_multiple_objects_frames():
    detected = [{"cat", "dog"}, {"cat"}, set(), {"dog", "bird"}]
    assert object_class_frames("cat", detected) == 2
    assert multiple_objects_frames("cat and dog", detected) == 1
    assert multiple_objects_frames("dog and bird", detected) == 1
    with pytest.raises(ValueError, match="A and B"):
        multiple_objects_frames("cat", detected)


def test_color_rule():
    assert color_object("a red bicycle", "red") == "bicycle"
    assert color_object("an orange umbrella", "orange") == "umbrella"
    frames = [
        [("a red bicycle", "bicycle")],  # object (red is a colour word) and colour
        [("a blue bicycle", "bicycle"), ("a red car", "car")],  # object only: the red belongs to the car
        [("a bicycle", "bicycle")],  # no colour word: neither
        [],
    ]
    assert color_counts("red", "bicycle", frames) == (2, 1)


def test_position_score_by_hand():
    left, right = (0, 0, 10, 10), (20, 0, 30, 10)  # side by side, no overlap
    assert position_score("on the left of", left, right) == 1
    assert position_score("on the right of", left, right) == 1  # the side is not checked
    assert position_score("on the top of", left, right) == 0  # horizontal offset, vertical relation
    above, below = (0, 0, 10, 10), (0, 20, 10, 30)
    assert position_score("on the bottom of", above, below) == 1
    # Overlapping horizontally offset boxes: intersection 5 * 10 = 50, union 150, IoU 1/3 -> 0.1 / (1/3).
    assert position_score("on the left of", (0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(0.3)


def test_spatial_frame_scores_take_the_best_pair():
    key = {"object_a": "dog", "object_b": "cat", "relationship": "on the left of"}
    frames = [
        [("dog", (0, 0, 10, 10)), ("cat", (20, 0, 30, 10)), ("tree", (0, 20, 10, 30))],  # 1
        [("dog", (0, 0, 10, 10)), ("cat", (5, 0, 15, 10))],  # 0.3
        [("dog", (0, 0, 10, 10))],  # no pair: 0
        [("dog", (0, 0, 10, 10)), ("dog", (0, 20, 10, 30)), ("cat", (5, 0, 15, 10))],  # pairs: 0, 0.3, 0 -> 0.3
    ]
    assert spatial_frame_scores(key, frames) == pytest.approx([1, 0.3, 0, 0.3])
