"""rewardkit's Tag2Text (``scene``) against VBench 0.1.5's own Tag2Text code under its pinned transformers 4.33.2.

What is compared. One random Tag2Text checkpoint in the layout of ``tag2text_swin_14m.pth`` (tiny Swin and
BERT depths, but what VBench's code hard-codes kept: 384 px, hidden 768, the real 3429 tags read from the
wheel's ``tag_class.py``; tag logits shifted so a few tags are on), a small BERT vocabulary, and 4 solid
384 x 384 frames of different colours (frame 3's caption comes from frame 1's tags, the others' from frame
0's, so the captions show whether the frame mapping is VBench's). VBench's side runs in a
subprocess (tests/parity/tag2text_official.py, with the patches it lists) because its captions go through
transformers 4.33.2's ``generate`` (beam search scoring and the repetition of ``encoder_hidden_states``
per beam that VBench's ``med.py`` truncates), while the project has transformers 5:

- official: ``tag2text_caption(pretrained=..., image_size=384, vit="swin_b")`` (VBench's scene submodule),
  its ``tag2text_transform(384)`` per frame, ``model.generate(video, tag_input=None,
  return_tag_predict=True)`` as ``scene.get_caption`` calls it, ``scene.check_generate`` on the captions;
- rewardkit: ``load_tag2text`` + ``Tag2TextCaptioner.generate`` on the same uint8 frames, and
  ``vbench_rules.scene_frames``.

Equal: the official model's state-dict keys and shapes and the checkpoint's; each frame's tags as the
official ``generate`` encodes them (recorded at its tokenizer) and captions (exactly);
the tag logits (|diff| <= 1e-5); the scene count. Without ``VBENCH_WHEEL`` (and the transformers wheel
beside it, see .ci/run) the test skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.rewards.tag2text import (
    Tag2TextCaptioner,
    build_tokenizer,
    caption_source_frames,
    load_tag2text,
    read_tag_list,
)
from rewardkit.rewards.vbench_rules import scene_frames
from rewardkit.testing.tag2text import solid_frames, write_tag2text_checkpoint, write_tiny_vocab
from tests.parity.official_vbench import extract_wheels

pytestmark = [pytest.mark.parity]

HIDDEN, INTERMEDIATE, POSITIONS = 768, 32, 64
SWIN = {"embed_dim": 8, "depths": [2, 1, 1, 1], "num_heads": [1, 2, 2, 4], "vision_width": 64}


def test_tag2text_matches_vbench(tmp_path):
    roots = extract_wheels(tmp_path / "wheels")
    if roots is None:
        pytest.skip("VBench's code is not here: set VBENCH_WHEEL (with transformers-4.33.2's wheel beside it; see .ci/run)")
    vbench_dir, transformers_dir = roots
    tags = read_tag_list(vbench_dir / "vbench" / "third_party" / "tag2Text" / "tag_class.py")
    vocab = write_tiny_vocab(tmp_path / "tokenizer")
    tokenizer = build_tokenizer(vocab)
    checkpoint = write_tag2text_checkpoint(
        tmp_path / "tag2text_swin_14m.pth",
        vocab=len(tokenizer),
        classes=len(tags),
        hidden=HIDDEN,
        intermediate=INTERMEDIATE,
        swin_dim=SWIN["embed_dim"],
        swin_depths=SWIN["depths"],
        swin_heads=SWIN["num_heads"],
        text_layers=1,
        tag_layers=1,
        positions=POSITIONS,
        eos_id=tokenizer.sep_token_id,
        tag_bias=-3.0,  # a few of the 3429 tags on per frame, so that frames differ in their tag text
    )
    frames = solid_frames(4)
    np.save(tmp_path / "frames.npy", frames)
    text = {"vocab_size": len(tokenizer), "intermediate_size": INTERMEDIATE, "num_hidden_layers": 1, "max_position_embeddings": POSITIONS}
    job = {
        "vbench_dir": str(vbench_dir),
        "transformers_dir": str(transformers_dir),
        "checkpoint": str(checkpoint),
        "tokenizer": str(vocab),
        "configs": {"med_config.json": text, "q2l_config.json": {**text, "vocab_size": 30522}, "config_swinB_384.json": SWIN},
        "frames": str(tmp_path / "frames.npy"),
        "scene": "water sky",
        "out": str(tmp_path / "official.pt"),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    runner = Path(__file__).with_name("tag2text_official.py")
    done = subprocess.run([sys.executable, str(runner), str(tmp_path / "job.json")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    official = torch.load(tmp_path / "official.pt", weights_only=True)

    saved = torch.load(checkpoint, weights_only=True)["model"]
    assert official["state_shapes"] == {key: list(value.shape) for key, value in saved.items()}
    assert official["unexpected"] == []

    captioner = Tag2TextCaptioner(load_tag2text(checkpoint), tokenizer, tags)
    captions, ours_tags, logits = captioner.generate(torch.from_numpy(frames).permute(0, 3, 1, 2))
    difference = (logits - official["logits"]).abs().max().item()
    counts = [len(tags.split(" | ")) for tags in ours_tags]
    print(f"\ntag logits |diff| {difference:.2e}; tags on per frame {counts}; captions {captions}; caption sources {caption_source_frames(4)}")
    assert ours_tags == official["tag_inputs"][:: 3]  # generate() encodes each frame's tags once per beam
    # VBench's return_tag_predict hands back the first N of those N * 3 strings: frames 0, 0, 0, 1.
    assert official["returned_tags"] == [ours_tags[index // 3] for index in range(len(frames))]
    assert captions == official["captions"]
    assert captions[0] == captions[1] == captions[2] != captions[3]  # the fixture's frames 0 and 1 caption apart
    assert difference <= 1e-5
    assert scene_frames(job["scene"], captions) == official["count"]
