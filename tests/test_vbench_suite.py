"""The full VBench suite (eval/vbench.toml): VBench's prompt lists and auxiliary info through the pinned
download's loader, per-dimension prompt filtering, and what Quality / Semantic / Total rest on.

Independent references: a stand-in info file written here in the format of VBench's
``vbench/VBench_full_info.json`` (entries copied in shape from it: ``prompt_en``, ``dimension``,
``auxiliary_info``), read by the same loader as the real file, and VBench's ``load_dimension_info`` rule
(a dimension's prompts are the entries listing it); counts of dimensions and videos by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardkit.errors import UserInputError
from rewardkit.eval.harness import aggregate, evaluate
from rewardkit.eval.suite import load_suite
from rewardkit.eval.vbench import QUALITY, SEMANTIC
from rewardkit.eval.vbench_info import (
    VBENCH_COMMIT,
    VBENCH_INFO_FILE,
    load_vbench_info,
)
from rewardkit.registry import BUILTIN_REWARDS
from rewardkit.weights import url_cache_path

REPO = Path(__file__).resolve().parent.parent
CAR, BEACH, CAT, ALLEY = "a car driving", "a beach, Van Gogh style", "a white cat", "alley"
# The GRiT dimensions' prompts, labelled as in VBench's file.
ONE, TWO, RED, LEFT = "a car", "a car and a dog", "a red car", "a car on the left of a dog"
SPATIAL = {"object_a": "car", "object_b": "dog", "relationship": "on the left of"}
GRIT_PROMPTS = (ONE, TWO, RED, CAT, LEFT)


def write_stand_in(path: Path) -> Path:
    """Every dimension of eval/vbench.toml but the GRiT ones and scene gets "a car driving"; appearance_style
    gets the beach with its style text; "alley" gets scene with its label nested as in VBench's file; the
    GRiT dimensions get their own prompts with their labels (color two: "a red car" and "a white cat");
    "a blue bus" serves no dimension."""
    present = [*QUALITY, "temporal_style", "overall_consistency", "human_action"]
    entries = [
        {"prompt_en": CAR, "dimension": present},
        {"prompt_en": BEACH, "dimension": ["appearance_style"],
         "auxiliary_info": {"appearance_style": {"appearance_style": "Van Gogh style"}}},
        {"prompt_en": ALLEY, "dimension": ["scene"], "auxiliary_info": {"scene": {"scene": {"scene": "alley"}}}},
        {"prompt_en": ONE, "dimension": ["object_class"], "auxiliary_info": {"object_class": {"object": "car"}}},
        {"prompt_en": TWO, "dimension": ["multiple_objects"], "auxiliary_info": {"multiple_objects": {"object": "car and dog"}}},
        {"prompt_en": RED, "dimension": ["color"], "auxiliary_info": {"color": {"color": "red"}}},
        {"prompt_en": CAT, "dimension": ["color"], "auxiliary_info": {"color": {"color": "white"}}},
        {"prompt_en": LEFT, "dimension": ["spatial_relationship"],
         "auxiliary_info": {"spatial_relationship": {"spatial_relationship": SPATIAL}}},
        {"prompt_en": "a blue bus", "dimension": []},
    ]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def test_loader_reads_prompts_and_auxiliary_info(tmp_path):
    info = load_vbench_info(write_stand_in(tmp_path / "info.json"))
    assert info.prompts("appearance_style") == (BEACH,) and info.prompts("motion_smoothness") == (CAR,)
    assert info.auxiliary("appearance_style", BEACH) == {"appearance_style": "Van Gogh style"}
    assert info.auxiliary("color", CAT) == {"color": "white"} and info.auxiliary("color", CAR) is None
    assert info.auxiliary_text("scene", ALLEY, "scene.scene") == "alley" and info.auxiliary_text("scene", ALLEY, "nothing") is None
    # an object is given as its JSON text (spatial_relationship's label)
    assert json.loads(info.auxiliary_text("spatial_relationship", LEFT, "spatial_relationship")) == SPATIAL
    assert info.auxiliary_text("scene", ALLEY, "scene") == '{"scene": "alley"}'
    (tmp_path / "bad.json").write_text(json.dumps([{"prompt": "x"}]))
    with pytest.raises(UserInputError, match="prompt_en"):
        load_vbench_info(tmp_path / "bad.json")


def test_the_real_file_is_pinned_and_hash_checked(tmp_path, monkeypatch):
    """The URL names VBench's file at a fixed commit; offline and uncached, the error says where to get it;
    a cached file whose sha256 is not the pinned one is refused."""
    assert VBENCH_COMMIT in VBENCH_INFO_FILE.url and VBENCH_INFO_FILE.url.endswith("/vbench/VBench_full_info.json")
    assert len(VBENCH_INFO_FILE.sha256) == 64
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserInputError, match="VBench_full_info.json is not available"):
        load_vbench_info("vbench")
    cached = url_cache_path(VBENCH_INFO_FILE)
    cached.parent.mkdir(parents=True)
    write_stand_in(cached)
    with pytest.raises(UserInputError, match="sha256"):
        load_vbench_info("vbench")


def test_shipped_suite_has_every_dimension_rewardkit_can_score(tmp_path):
    suite = load_suite(REPO / "eval" / "vbench.toml", vbench_info=write_stand_in(tmp_path / "info.json"))
    names = [dimension.name for dimension in suite.dimensions]
    assert suite.videos_per_prompt == 5 and all(dimension.vbench for dimension in suite.dimensions)
    assert sorted(names) == sorted(name for name in (*QUALITY, *SEMANTIC) if name in BUILTIN_REWARDS)
    own = {dimension.name: dimension.prompts for dimension in suite.dimensions}
    assert own["appearance_style"] == (BEACH,) and own["subject_consistency"] == (CAR,) and own["scene"] == (ALLEY,)
    assert own["color"] == (RED, CAT) and own["spatial_relationship"] == (LEFT,)
    assert suite.prompts == (CAR, BEACH, ALLEY, *GRIT_PROMPTS)
    # the labels the shipped prompt_keys give the rewards (color's is its prompt)
    labels = {d.name: suite.vbench_info.auxiliary_text(d.name, d.prompts[0], d.prompt_key) for d in suite.dimensions if d.prompt_key}
    assert labels == {"appearance_style": "Van Gogh style", "scene": "alley", "object_class": "car",
                      "multiple_objects": "car and dog", "spatial_relationship": json.dumps(SPATIAL)}


def test_summary_says_what_each_total_rests_on(tmp_path):
    """Hand-built rows: all 7 quality dimensions on videos a and b (b failed once), 3 semantic ones on c."""
    suite = load_suite(REPO / "eval" / "vbench.toml", vbench_info=write_stand_in(tmp_path / "info.json"))
    rows = [(name, path, "ok") for name in QUALITY for path in ("a.mp4", "b.mp4")]
    rows[-1] = (QUALITY[-1], "b.mp4", "failed")
    rows += [(name, "c.mp4", "ok") for name in ("appearance_style", "temporal_style", "overall_consistency")]
    per_video = pd.DataFrame([{"dimension": d, "path": p, "status": s, "score": 0.5, "n_frames": 8} for d, p, s in rows])
    summary = aggregate(suite, per_video, model_name="m").summary
    basis = summary["vbench_basis"]
    assert basis["quality"] == {"dimensions": 7, "of": 7, "videos": 2, "missing": []}
    assert basis["semantic"]["dimensions"] == 3 and basis["semantic"]["videos"] == 1
    assert sorted(basis["semantic"]["missing"]) == sorted({*SEMANTIC} - {"appearance_style", "temporal_style", "overall_consistency"})
    assert basis["total"]["videos"] == 3 and basis["total"]["of"] == 16
    assert summary["quality"] is not None and summary["semantic"] is None and summary["total"] is None


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_full_suite_end_to_end_offline(tmp_path, tiny_reward_options):
    """eval/vbench.toml on synthetic clips with every dimension's tiny random weights: each dimension
    scores only its own prompts' videos (the bus, listed for no dimension, is scored by none); Quality,
    Semantic and Total are computed from 7, 9 and 16 dimensions.

    The tiny GRiT names every box "car" and captions it "red car" (rewardkit.testing.grit), so by VBench's
    rules: object_class "car" 1; multiple_objects "car and dog" 0; color "a red car" 1 while "a white cat"
    shows no cat and is left out (skipped, not averaged); spatial_relationship in [0, 1]. The GRiT prompts'
    clips are 2 frames of 32 px (GRiT describes every box token by token)."""
    from rewardkit.testing.vbench import moving_square_clip
    from rewardkit.video.io import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    for index, prompt in enumerate((CAR, BEACH, "a blue bus", ALLEY)):
        write_video(videos / f"{prompt}-0.mp4", moving_square_clip(4, 128, 128, speed=2.0 + index, seed=index))
    for index, prompt in enumerate(GRIT_PROMPTS):
        write_video(videos / f"{prompt}-0.mp4", moving_square_clip(2, 32, 32, speed=2.0 + index, seed=index))
    suite = load_suite(REPO / "eval" / "vbench.toml", vbench_info=write_stand_in(tmp_path / "info.json"))
    weights: dict = {}
    # A random RAFT cannot tell a static clip from a moving one: the static filter is off here (its own
    # tests are in test_vbench_dims.py), so temporal_flickering scores every video of its prompts.
    options: dict = {"temporal_flickering": {"static_filter": "none"}}
    for dimension in suite.dimensions:
        if dimension.name == "temporal_flickering":
            continue
        found = dict(tiny_reward_options(dimension.reward_name))
        weights[dimension.reward_name] = found.pop("weights")
        if found:
            options[dimension.name] = {key: str(value) for key, value in found.items()}
    run = evaluate(suite, videos, out=tmp_path / "run", weights=weights, options=options, workers=0, progress=False)
    table = run.dimensions.set_index("dimension")
    assert table.loc["appearance_style", "n"] == 1 and table.loc["motion_smoothness", "n"] == 1
    assert table.loc["human_action", "n"] == 1 and table.loc["human_action", "score"] in (0.0, 1.0)
    assert table.loc["scene", "n"] == 1
    assert table.loc["object_class", "score"] == 1.0 and table.loc["multiple_objects", "score"] == 0.0
    assert table.loc["color", "n"] == 1 and table.loc["color", "skipped"] == 1 and table.loc["color", "score"] == 1.0
    assert 0.0 <= table.loc["spatial_relationship", "score"] <= 1.0 and table.loc["spatial_relationship", "n"] == 1
    assert (table["failed"] == 0).all() and np.isfinite(table["score"]).all()
    assert not any(run.videos["path"].str.contains("a blue bus"))
    assert None not in (run.summary["quality"], run.summary["semantic"], run.summary["total"])
    basis = run.summary["vbench_basis"]
    assert (basis["quality"]["dimensions"], basis["semantic"]["dimensions"], basis["total"]["dimensions"]) == (7, 9, 16)
    assert run.summary["vbench_missing"] == []
