"""VBench's decision rules for its semantic dimensions, as pure functions of the models' outputs.

Each follows the named function of VBench (https://github.com/Vchitect/VBench, commit 45e79ec), quirks
included. Tag2Text, which feeds scene, is ``rewardkit.rewards.tag2text``; GRiT, which feeds object_class,
multiple_objects, color and spatial_relationship, is ``rewardkit.rewards.grit`` (its ``dimension_score``
applies the rules below to its detections); UMT (human_action) is built separately.

- human_action (``human_action.py``): the label is parsed from the file name; the video is correct when
  the label equals one of the top-5 Kinetics-400 classes whose sigmoid score, rounded to 4 decimals, is at
  least 0.85. The dimension's score is the fraction of correct videos.
- scene (``scene.py`` ``check_generate``): a frame's caption matches when every space-separated word of
  the scene label occurs in it as a substring; score = matching frames / frames, pooled over videos.
- object_class / multiple_objects (``check_generate``): a frame counts when the label (each of the two
  labels of "A and B") is among the frame's detected classes; pooled like scene.
- color (``color.py``): per frame, over GRiT's (caption, class) pairs for the prompt's object: the object
  counts when its caption names any of 12 colours, the colour when its caption contains the asked colour;
  a video's score is colour frames / object frames, and videos without the object are left out.
- spatial_relationship (``spatial_relationship.py``): per frame the best ``get_position_score`` over pairs
  of boxes of either object (0 without a pair); the dimension is the mean over all frames of all videos.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

__all__ = [
    "COLOURS",
    "action_label",
    "color_counts",
    "color_object",
    "human_action_correct",
    "multiple_objects_frames",
    "object_class_frames",
    "position_score",
    "scene_frames",
    "spatial_frame_scores",
]

# color.py check_generate: the colour words whose presence makes a caption describe the object's colour.
COLOURS = ("white", "red", "pink", "blue", "silver", "purple", "orange", "green", "gray", "yellow", "black", "grey")
ACTION_THRESHOLD = 0.85

Box = Sequence[float]  # x_min, y_min, x_max, y_max


def action_label(path: str) -> str:
    """The action VBench reads from a video's file name (``"A person is riding a bike-0.mp4"`` -> ``"riding
    a bike"``): last path part, lower case, before the first ``-``, after ``person is ``, before ``_``."""
    return path.split("/")[-1].lower().split("-")[0].split("person is ")[-1].split("_")[0]


def human_action_correct(probabilities: Sequence[float], classes: Sequence[str], label: str) -> bool:
    """VBench's top-5 rule on one video's class scores (after the sigmoid) over ``classes`` (Kinetics-400
    names in index order; compared in lower case)."""
    if len(probabilities) != len(classes) or len(classes) < 5:
        raise ValueError(f"need one score per class and at least 5 classes, got {len(probabilities)} scores for {len(classes)} classes")
    top = sorted(range(len(probabilities)), key=lambda index: -probabilities[index])[:5]
    kept = [classes[index].lower() for index in top if round(float(probabilities[index]), 4) >= ACTION_THRESHOLD]
    return label in kept


def scene_frames(scene: str, captions: Iterable[str]) -> int:
    """Frames whose caption contains every word of ``scene`` (substring test, as VBench's ``q in pred``)."""
    words = scene.split(" ")
    return sum(1 for caption in captions if all(word in caption for word in words))


def object_class_frames(label: str, detected: Iterable[Collection[str]]) -> int:
    """Frames whose set of detected classes contains ``label``."""
    return sum(1 for classes in detected if label in classes)


def multiple_objects_frames(labels: str, detected: Iterable[Collection[str]]) -> int:
    """Frames in which both objects of ``"A and B"`` (VBench's auxiliary ``object``) are detected."""
    first, _, second = labels.partition(" and ")
    if not second:
        raise ValueError(f"multiple_objects labels are 'A and B', got {labels!r}")
    first, second = first.strip(), second.strip()
    return sum(1 for classes in detected if first in classes and second in classes)


def color_object(prompt: str, colour: str) -> str:
    """The object of a colour prompt as VBench derives it: drop every ``"a "`` and ``"an "``, then the colour,
    then strip (``"a red bicycle"`` -> ``"bicycle"``)."""
    return prompt.replace("a ", "").replace("an ", "").replace(colour, "").strip()


def color_counts(colour: str, obj: str, frames: Iterable[Iterable[tuple[str, str]]]) -> tuple[int, int]:
    """``(object frames, colour frames)`` over frames of ``(caption, class)`` detections: a frame is an
    object frame when a detection of class ``obj`` has a caption naming any of ``COLOURS``, and a colour
    frame when such a detection's caption contains ``colour``."""
    object_frames = colour_frames = 0
    for detections in frames:
        has_object = has_colour = False
        for caption, name in detections:
            if name == obj:
                has_object = has_object or any(word in caption for word in COLOURS)
                has_colour = has_colour or colour in caption
        object_frames += has_object
        colour_frames += has_colour
    return object_frames, colour_frames


def position_score(relation: str, first: Box, second: Box, iou_threshold: float = 0.1) -> float:
    """VBench's ``get_position_score``: for a left/right relation, 1 when the boxes' centres are further
    apart horizontally than vertically and their IoU is under the threshold, ``threshold / IoU`` when they
    overlap more, else 0; top/bottom likewise vertically. The side (left vs right) is not checked, and
    ``relation`` matches when it is a substring of "on the right of"/"on the left of" (or top/bottom)."""
    dx = (second[0] + second[2]) / 2 - (first[0] + first[2]) / 2
    dy = (second[1] + second[3]) / 2 - (first[1] + first[3]) / 2
    overlap_x = max(0, min(first[2], second[2]) - max(first[0], second[0]))
    overlap_y = max(0, min(first[3], second[3]) - max(first[1], second[1]))
    intersection = overlap_x * overlap_y
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - intersection
    iou = intersection / union
    if relation in "on the right of" or relation in "on the left of":
        along, across = abs(dx), abs(dy)
    elif relation in "on the bottom of" or relation in "on the top of":
        along, across = abs(dy), abs(dx)
    else:
        return 0
    if along <= across:
        return 0
    return 1 if iou < iou_threshold else iou_threshold / iou


def spatial_frame_scores(key: Mapping[str, str], frames: Iterable[Iterable[tuple[str, Box]]]) -> list[float]:
    """Per frame, the best ``position_score`` over every pair of boxes whose class is ``object_a`` or
    ``object_b`` (in detection order; 0 without a pair), for ``key`` = VBench's auxiliary
    ``{"object_a", "object_b", "relationship"}``."""
    scores = []
    for detections in frames:
        boxes = [box for name, box in detections if name in (key["object_a"], key["object_b"])]
        pairs = [position_score(key["relationship"], boxes[i], boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes))]
        scores.append(max([0, *pairs]))
    return scores
