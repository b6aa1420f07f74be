"""`rewardkit list`, `download` and `env`."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardkit import network
from rewardkit.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "videos"


def test_list_shows_every_reward_with_its_declarations(capsys):
    assert main(["list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name,modality,prompt,differentiable,weights,size,cached,licence"
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert {"hpsv2", "pickscore", "clip", "temporal_flickering"} <= set(rows)
    assert "xswu/HPSv2/HPS_v2.1_compressed.pt" in rows["hpsv2"] and "1.97 GB" in rows["hpsv2"]
    assert "none (weight-free)" in rows["temporal_flickering"]


def test_download_refuses_offline(capsys):
    assert main(["download", "hpsv2"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_download_fills_the_cache_and_reports_the_hash(capsys, monkeypatch, tmp_path, hps_checkpoint):
    """The hub client is replaced by a local copy (tests never touch the network); rewardkit's own path runs."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE")
    requested = []

    def fake_download(repo, filename, revision=None, local_files_only=False):
        requested.append((repo, filename, local_files_only))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        return str(hps_checkpoint)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(network, "unreachable_reason", lambda url: None)  # the fake client stands for a reachable Hub
    assert main(["download", "hpsv2:version=v2.0"]) == 0
    out = capsys.readouterr().out
    assert requested == [("xswu/HPSv2", "HPS_v2_compressed.pt", True), ("xswu/HPSv2", "HPS_v2_compressed.pt", False)]
    assert hashlib.sha256(hps_checkpoint.read_bytes()).hexdigest() in out


def test_download_of_weight_free_reward(capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert main(["download", "temporal_flickering"]) == 0
    assert "nothing to download" in capsys.readouterr().out


def test_env_reports_versions(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for word in ("rewardkit", "torch", "open_clip_torch", "video backend", "offline"):
        assert word in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2


@pytest.mark.parametrize("value", ["x=1", "/some/path.pt"])
def test_weights_flag_needs_a_name_when_several_rewards_need_weights(capsys, value):
    code = main(["score", "examples/videos", "--reward", "hpsv2", "--reward", "pickscore", "--weights", value, "--no-progress"])
    assert code == 2 and "--weights NAME=PATH" in capsys.readouterr().err


def test_score_examples_with_dover_and_imagereward(tmp_path, capsys):
    """Issue 3's acceptance command, `rewardkit score examples/videos --reward dover --reward imagereward`,
    with tiny random checkpoints in the official layouts passed as --weights."""
    from rewardkit.testing.dover import write_dover_checkpoint
    from rewardkit.testing.imagereward import write_bert_vocab, write_imagereward_checkpoint

    dover = write_dover_checkpoint(tmp_path / "DOVER.pth")
    imagereward = write_imagereward_checkpoint(tmp_path / "imagereward")
    tokenizer = write_bert_vocab(tmp_path / "bert")
    out = tmp_path / "results.csv"
    code = main([
        "score", str(EXAMPLES), "--reward", "dover", "--reward", "imagereward", "--weights", f"imagereward.tokenizer={tokenizer}",
        "--weights", f"dover={dover}", "--weights", f"imagereward={imagereward}", "--out", str(out),
        "--workers", "0", "--no-progress",
    ])
    capsys.readouterr()
    assert code == 0
    table = pd.read_csv(out)
    dover_rows, imagereward_rows = table[table["reward"] == "dover"], table[table["reward"] == "imagereward"]
    assert (imagereward_rows["status"] == "ok").sum() == 5
    assert (dover_rows["status"] == "ok").sum() == 4 and (dover_rows["status"] == "skipped").sum() == 1  # the still image
    scored = dover_rows[dover_rows["status"] == "ok"]
    assert scored["score"].between(0, 1).all()
    np.testing.assert_allclose(scored["score"], scored["dover_fused"])
    assert scored[["dover_technical", "dover_aesthetic"]].notna().all().all()
