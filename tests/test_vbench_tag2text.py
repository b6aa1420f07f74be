"""Tag2Text and the ``scene`` reward on tiny random weights (the parity with VBench's own code is in
tests/parity/test_tag2text_parity.py). Each test names what it checks against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit import create_reward
from rewardkit.rewards.tag2text import (
    TAG2TEXT_WEIGHTS,
    _Hypotheses,
    beam_search,
    caption_source_frames,
    load_tag2text,
    read_tag_list,
)
from rewardkit.rewards.vbench_rules import scene_frames
from rewardkit.testing.tag2text import (
    TINY_TAGS,
    solid_frames,
    tiny_scene,
    write_tag2text_checkpoint,
    write_tag_list,
)
from rewardkit.testing.vbench import textured_background
from rewardkit.weights import WeightsMismatchError


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    options = tiny_scene(tmp_path_factory.mktemp("tag2text"))
    return create_reward("scene", **options), options


def test_caption_source_frames_follow_the_repeated_encoder_states():
    """Hand-derived from transformers >= 4.27 ``_expand_inputs_for_generation`` (repeat_interleave of the
    already beam-repeated tag encodings, N*3 -> N*9 rows) and med.py keeping the first N*3 key rows: row
    q = 3f + b reads repeated row q, which holds frame q // 9."""
    assert caption_source_frames(16) == [[frame // 3] * 3 for frame in range(16)]
    assert caption_source_frames(4, beams=2) == [[0, 0], [0, 0], [1, 1], [1, 1]]


def test_beam_search_scores_by_length_with_the_prompt_counted():
    """A hand-built next-token table (vocab: 0 pad, 1 eos, 2 "a", 3 "b"), 2 beams, prompt of length 2.
    From the prompt: eos has log 0.6, "a" 0.3, "b" 0.1; after "a": "b" 0.9; after "a b": eos 1.0. Under
    transformers 4.33.2's rule (sum of log-probabilities / length, prompt included, end token not) the
    early end scores log(0.6)/2 = -0.255 and "a b" ends with (log 0.3 + log 0.9)/4 = -0.327, so the short
    one wins; with min_length=3 the end token is barred at length 2 and "a b" is returned."""
    table = {(): [0.0, 0.6, 0.3, 0.1], (2,): [0.0, 0.05, 0.05, 0.9], (2, 3): [0.0, 1.0, 0.0, 0.0]}

    def logits(ids: torch.Tensor) -> torch.Tensor:
        rows = [table.get(tuple(row[2:].tolist()), [0.0, 0.4, 0.3, 0.3]) for row in ids]
        return torch.tensor(rows).clamp_min(1e-9).log()

    prompt = torch.tensor([[5, 6]])
    short = beam_search(logits, prompt, beams=2, max_length=6, min_length=0, eos=1, pad=0)
    assert short.tolist() == [[5, 6, 1]]
    barred = beam_search(logits, prompt, beams=2, max_length=6, min_length=3, eos=1, pad=0)
    assert barred.tolist() == [[5, 6, 2, 3, 1]]


def test_hypotheses_keep_the_best_and_stop_by_the_heuristic():
    """transformers 4.33.2 ``BeamHypotheses``: the worst of ``beams`` is dropped on overflow; "done" when
    the worst kept score is >= best running sum / current length."""
    kept = _Hypotheses(2)
    for length, total in ((3, -3.0), (4, -2.0), (5, -10.0), (2, -0.2)):
        kept.add(torch.zeros(length), total)
    assert sorted(score for score, _ in kept.kept) == [-0.5, -0.1]
    assert kept.done(-3.0, 6) and not kept.done(-1.0, 6)
    assert kept.best().shape[0] == 2


def test_checkpoint_loads_strictly_with_tied_tensors(tmp_path):
    """The official layout: the tag encoder's first layers are the very tensors of vision_multi, the
    decoder's output matrix is its word embedding; a missing or an unexpected key is refused."""
    path = write_tag2text_checkpoint(tmp_path / "t.pth", vocab=40, classes=6, text_layers=2, tag_layers=1)
    model = load_tag2text(path)
    shared = model.vision_multi.encoder.layer[0].crossattention.self.query.weight
    assert model.tag_encoder.encoder.layer[0].crossattention.self.query.weight is shared
    assert model.tag_encoder.encoder.layer[1].crossattention.self.query.weight is not shared
    assert model.text_decoder.cls.predictions.decoder.weight is model.text_decoder.bert.embeddings.word_embeddings.weight
    state = torch.load(path, weights_only=True)
    for change in ("missing", "unexpected"):
        broken = dict(state["model"])
        if change == "missing":
            broken.pop("fc.b")
        else:
            broken["fc.extra"] = torch.zeros(1)
        torch.save({"model": broken}, tmp_path / f"{change}.pth")
        with pytest.raises(WeightsMismatchError, match="fc."):
            load_tag2text(tmp_path / f"{change}.pth")


def test_tag_list_is_read_without_running_it(tmp_path):
    """VBench's tag_class.py format, parsed as a literal; the pinned file is VBench's at a fixed commit."""
    assert read_tag_list(write_tag_list(tmp_path / "tag_class.py", ["a", "b c"])) == ["a", "b c"]
    (tmp_path / "evil.py").write_text("tra_array = [__import__('os').getcwd()]\n")
    with pytest.raises(Exception, match="tra_array"):
        read_tag_list(tmp_path / "evil.py")
    assert TAG2TEXT_WEIGHTS["tags"].sha256 and "/Vchitect/VBench/45e79ec" in TAG2TEXT_WEIGHTS["tags"].url


def test_captions_follow_vbench_frame_mapping(scene):
    """Four frames of different colours: frames 0-2 are captioned from frame 0's tag encoding and frame 3
    from frame 1's (``caption_source_frames``), so the first three captions agree although the frames
    differ, and frame 3's differs (frames 0 and 1 caption apart with this fixture); tags and logits stay
    per frame."""
    reward, _ = scene
    frames = torch.from_numpy(solid_frames(4)).permute(0, 3, 1, 2)
    captions, tags, logits = reward.captioner.generate(frames)
    assert captions[0] == captions[1] == captions[2] != captions[3]
    assert logits.shape == (4, len(TINY_TAGS)) and len(tags) == 4 and not torch.equal(logits[0], logits[1])
    assert all(tag in TINY_TAGS for line in tags for tag in line.split(" | ") if tag)


@pytest.mark.slow
def test_scene_score_is_vbench_rule_on_16_middle_frames(scene):
    """The reward on a 20-frame 64 x 80 clip: VBench's 16 middle frames, resized to 384, captioned in one
    call; the score is ``scene_frames(label, captions) / 16`` (VBench's check_generate) on exactly the
    captions it made (recorded)."""
    reward, _ = scene
    video = torch.from_numpy(np.stack([textured_background(64, 80, seed=seed) for seed in range(20)])).permute(0, 3, 1, 2)
    recorded: list[list[str]] = []
    captions = reward.captions

    def recording(frames: torch.Tensor) -> list[str]:
        recorded.append(captions(frames))
        assert frames.shape[0] == 16
        return recorded[-1]

    reward.captions = recording
    try:
        label = "city"
        score = reward(video[None], [label]).item()
    finally:
        del reward.captions
    assert len(recorded) == 1 and score == pytest.approx(scene_frames(label, recorded[0]) / 16)
