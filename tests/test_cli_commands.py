"""`rewardkit list`, `download` and `env`."""

import hashlib

import pytest

from rewardkit.cli import main


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
