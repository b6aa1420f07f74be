"""Weights: resolution order, hashes, safe loading, strict keys, offline errors."""

import hashlib
import pickle

import pytest
import torch

from rewardkit import create_reward
from rewardkit.registry import WeightFile
from rewardkit.testing import put_in_hf_cache
from rewardkit.weights import (
    MissingWeightsError,
    WeightsMismatchError,
    check_keys,
    fetch_weight_file,
    load_state_dict,
    load_strict,
    resolve_weights,
    sha256_of,
)

HPS = WeightFile("xswu/HPSv2", "HPS_v2.1_compressed.pt", 1_972_218_882, "Apache-2.0")


def test_missing_weights_offline_names_repo_file_size_and_both_remedies():
    with pytest.raises(MissingWeightsError) as raised:
        create_reward("hpsv2")
    message = str(raised.value)
    for expected in ("xswu/HPSv2", "HPS_v2.1_compressed.pt", "1.97 GB", "HF_HUB_OFFLINE",
                     "rewardkit download hpsv2", "--weights PATH"):
        assert expected in message


def test_missing_weights_when_download_fails(monkeypatch):
    # Not offline: the download is attempted, the network guard refuses it, and the error still says what to do.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(MissingWeightsError, match=r"(?s)download failed.*rewardkit download hpsv2"):
        create_reward("hpsv2")


def test_explicit_path_that_does_not_exist():
    with pytest.raises(MissingWeightsError, match="does not exist"):
        create_reward("hpsv2", weights="/nonexistent/HPS.pt")


def test_hf_cache_is_used_and_verified_against_hub_hash(tmp_path, hf_cache, hps_checkpoint, tiny_clip_config):
    put_in_hf_cache(hf_cache, "xswu/HPSv2", {"HPS_v2.1_compressed.pt": hps_checkpoint})
    path = fetch_weight_file(HPS, reward="hpsv2")
    assert path.name == "HPS_v2.1_compressed.pt"
    # The same user path as with a real download: no weights argument at all.
    reward = create_reward("hpsv2", architecture=str(tiny_clip_config))
    assert reward.weights_sha256 == hashlib.sha256(hps_checkpoint.read_bytes()).hexdigest()
    # A corrupted blob no longer matches the hash the Hub filed it under.
    blob = path.resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsMismatchError, match="sha256"):
        create_reward("hpsv2")


def test_an_explicit_path_is_used_as_given_and_its_sha256_recorded(hps_checkpoint, tiny_clip_config):
    """A path is the user's choice (here a tiny checkpoint that is not the published file, whose Hub hash it
    cannot match): it loads, strictly, and the results record the sha256 of exactly that file (hashlib)."""
    reward = create_reward("hpsv2", weights=str(hps_checkpoint), architecture=str(tiny_clip_config))
    assert reward.weights_sha256 == hashlib.sha256(hps_checkpoint.read_bytes()).hexdigest()
    folder = create_reward("hpsv2", weights=str(hps_checkpoint.parent), architecture=str(tiny_clip_config))
    assert folder.weights_sha256 == reward.weights_sha256  # a folder holding HPS_v2.1_compressed.pt


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoints_cannot_run_code(tmp_path):
    file = tmp_path / "evil.pt"
    with open(file, "wb") as handle:
        pickle.dump({"state_dict": _Payload()}, handle)
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        load_state_dict(file)


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(3.0)}, str(tmp_path / "m.safetensors"))
    assert torch.equal(load_state_dict(tmp_path / "m.safetensors")["w"], torch.arange(3.0))


def test_missing_and_unexpected_keys_are_errors():
    module = torch.nn.Linear(2, 2)
    with pytest.raises(WeightsMismatchError, match=r"1 missing \(e.g. bias\); 1 unexpected \(e.g. extra\)"):
        load_strict(module, {"weight": torch.zeros(2, 2), "extra": torch.zeros(1)}, "ckpt")
    with pytest.raises(WeightsMismatchError, match="wrong shape"):
        load_strict(module, {"weight": torch.zeros(3, 2), "bias": torch.zeros(2)}, "ckpt")
    check_keys(["a"], ["a"], "ok")


def test_hps_checkpoint_without_state_dict_key(tmp_path, tiny_clip_config):
    file = tmp_path / "flat.pt"
    torch.save({"visual.proj": torch.zeros(1)}, file)
    with pytest.raises(WeightsMismatchError, match="expected a dict with key 'state_dict'"):
        create_reward("hpsv2", weights=str(file), architecture=str(tiny_clip_config))


def test_hps_checkpoint_of_wrong_architecture(tmp_path, hps_checkpoint):
    # The tiny checkpoint does not fit the real ViT-B-32: a clear key/shape error, never a silent partial load.
    with pytest.raises(WeightsMismatchError, match="wrong shape|missing"):
        create_reward("hpsv2", weights=str(hps_checkpoint), architecture="ViT-B-32")


def _url_weight(tmp_path, sha256=None):
    source = tmp_path / "server" / "sac+logos+head.pth"
    source.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.arange(4.0)}, source)
    url = source.as_uri()  # file:// : urllib's own scheme, so the download path runs with no network
    weight = WeightFile("someone/project", "sac+logos+head.pth", source.stat().st_size, "MIT",
                        sha256=sha256 or sha256_of(source), url=url)
    return weight, source


def _missing_head(monkeypatch, weight, clip_checkpoint, tiny_clip_config):
    """``aesthetic``'s laion head replaced by ``weight`` (its backbone given): the user path of a URL file."""
    from rewardkit.rewards.aesthetic import AESTHETIC_HEADS

    monkeypatch.setitem(AESTHETIC_HEADS, "laion", weight)
    return lambda: resolve_weights(
        "aesthetic", {"backbone": str(clip_checkpoint)}, {"head": "laion", "architecture": str(tiny_clip_config)}
    )


def test_url_file_is_downloaded_into_the_rewardkit_cache_and_verified(
    tmp_path, monkeypatch, clip_checkpoint, tiny_clip_config
):
    from rewardkit.weights import cache_root, cached_weight_path

    weight, source = _url_weight(tmp_path)
    resolve = _missing_head(monkeypatch, weight, clip_checkpoint, tiny_clip_config)
    with pytest.raises(MissingWeightsError) as raised:  # offline (the test default): nothing is fetched
        resolve()
    message = str(raised.value)
    for expected in (weight.url, "sac+logos+head.pth", weight.size_text, "rewardkit cache", "REWARDKIT_CACHE",
                     "rewardkit download aesthetic", "--weights PATH"):
        assert expected in message
    assert "open_clip_model.safetensors" not in message  # the backbone was given: only the head is missing
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = resolve()["head"]
    assert path.name == "sac+logos+head.pth" and cache_root() in path.parents
    assert path.read_bytes() == source.read_bytes() and cached_weight_path(weight) == path
    assert not list(path.parent.glob("*.partial"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source.unlink()  # offline and the server gone: the cached copy is used
    assert resolve()["head"] == path
    path.write_bytes(b"corrupted")  # and re-verified against the pinned hash
    with pytest.raises(WeightsMismatchError, match="sha256"):
        resolve()
    path.unlink()


def test_url_download_with_a_wrong_hash_keeps_nothing(tmp_path, monkeypatch):
    from rewardkit.weights import cached_weight_path

    weight, _ = _url_weight(tmp_path, sha256="0" * 64)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(WeightsMismatchError, match="should have 0000"):
        fetch_weight_file(weight, reward="x")
    assert cached_weight_path(weight) is None
    assert not list(cache_root_files(weight))


def cache_root_files(weight):
    from rewardkit.weights import cache_root

    return [path for path in cache_root().rglob("*") if path.is_file() and weight.filename in path.name]


def test_url_download_failure_says_what_to_do(monkeypatch, clip_checkpoint, tiny_clip_config):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    weight = WeightFile("a/b", "head.pth", 3076, "MIT", url="https://example.invalid/head.pth")
    resolve = _missing_head(monkeypatch, weight, clip_checkpoint, tiny_clip_config)
    with pytest.raises(MissingWeightsError, match=r"(?s)download failed.*rewardkit download aesthetic.*--weights PATH"):
        resolve()


# ------------------------------------------------------------- advice for every registered reward

# Options that change which files a reward needs, beyond each reward's defaults.
VARIANTS = [("temporal_flickering", {"static_filter": "raft"}), ("aesthetic", {"head": "vbench"}),
            ("hpsv2", {"version": "v2.0"}), ("dover", {"variant": "mobile"}), ("videoscore", {"version": "v1.1"}),
            ("patch", {"base": "pickscore"})]


def _cases():
    from rewardkit import list_rewards

    return [(info.name, {}) for info in list_rewards()] + VARIANTS


@pytest.mark.parametrize(("name", "options"), _cases(), ids=lambda value: value if isinstance(value, str) else
                         ",".join(f"{key}={item}" for key, item in value.items()) or "defaults")
def test_missing_weights_advice_names_the_command_that_fetches_exactly_the_missing_files(name, options, empty_caches):
    """The advice is checked against the registry itself: each `rewardkit download SPEC` it names must be a spec
    of the reward asked for whose declared files include the missing file; each --weights key must name that
    reward (and the role for a secondary file); path-only files are never offered for download; sizes shown."""
    from rewardkit.registry import get_reward_info, parse_reward_spec

    info = get_reward_info(name)
    declared = info.weight_roles(options)
    if not declared:  # weight-free: it builds offline with nothing, and refuses weights
        assert create_reward(name, **options).weights_sha256 is None
        with pytest.raises(ValueError, match="has no weights"):
            create_reward(name, weights="x.pt", **options)
        return
    with pytest.raises(MissingWeightsError) as raised:
        create_reward(name, **options)
    error = raised.value
    assert {item.reward for item in error.missing} == {name}
    assert {(item.role, item.file) for item in error.missing} == set(declared.items())
    main_role = next(iter(declared))
    score, evaluation, python = error.advice("score"), error.advice("eval"), str(error)
    for item in error.missing:
        for text in (score, evaluation, python):
            assert item.file.filename in text and item.file.size_text in text
        key = name if item.role == main_role else f"{name}.{item.role}"
        assert f"`--weights {key}=PATH`" in evaluation
        assert ("`--weights PATH`" if item.role == main_role else f"`--weights {key}=PATH`") in score
        if not item.file.downloadable:
            assert item.file.manual in score
            continue
        specs = [spec for spec in score.split("`rewardkit download ")[1].split("`")[0].split()]
        fetching = [spec for spec in specs if item.file in get_reward_info(parse_reward_spec(spec)[0]).weight_files(
            parse_reward_spec(spec)[1])]
        assert fetching and all(parse_reward_spec(spec)[0] == name for spec in specs), (specs, item.file)
    if all(not item.file.downloadable for item in error.missing):
        assert "rewardkit download" not in score
    import re

    assert {match.partition(".")[0] for match in re.findall(r"--weights (\S+?)=PATH", score + evaluation)} == {name}
    assert "--weights PATH" not in evaluation  # `rewardkit eval` only takes NAME=PATH
    assert "--reward" not in score  # no option of this or another reward stands in for a file


def test_eval_lists_every_missing_file_of_the_suite_at_once(tmp_path, capsys, empty_caches):
    """Against the suite's own dimensions and the registry: every file of every dimension, with the total size
    of the distinct files, in `rewardkit eval`'s --weights NAME=PATH syntax; nothing is scored."""
    from rewardkit.cli import main
    from rewardkit.eval.suite import load_suite
    from rewardkit.registry import format_size, get_reward_info, parse_reward_spec

    suite = load_suite("eval/vbench-quality.toml")
    assert main(["eval", "eval/vbench-quality.toml", "--videos", "examples/videos", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    message = capsys.readouterr().err
    files = {}
    for dimension in suite.dimensions:
        reward, options = parse_reward_spec(dimension.reward)
        for file in get_reward_info(reward).weight_files(options):
            files[file.source] = file
            assert file.filename in message and f"--weights {reward}" in message
    assert f"({format_size(sum(file.size for file in files.values()))} in all)" in message
    assert f"{len(files)} files" in message
    assert "--weights PATH" not in message
    assert not (tmp_path / "run" / "dimensions").exists()


def test_path_only_weights_are_not_called_weight_free(capsys, monkeypatch):
    """`rewardkit list` and `rewardkit download` for RAFT's raft-things.pth, which rewardkit cannot download."""
    from rewardkit.cli import main
    from rewardkit.rewards.raft import RAFT_WEIGHTS

    assert main(["list", "--format", "csv"]) == 0
    rows = {line.split(",")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "raft-things.pth (path only)" in rows["dynamic_degree"] and "by path" in rows["dynamic_degree"]
    assert RAFT_WEIGHTS.size_text in rows["dynamic_degree"]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert main(["download", "dynamic_degree", "temporal_flickering:static_filter=raft", "temporal_flickering"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "weight-free" not in lines[0] and "models.zip" in lines[0] and "--weights dynamic_degree=PATH" in lines[0]
    assert "weight-free" not in lines[1] and "--weights temporal_flickering=PATH" in lines[1]
    assert lines[2] == "temporal_flickering: weight-free, nothing to download"


def test_tiny_model_cache_replaces_an_incomplete_folder_and_leaves_no_staging(tmp_path, monkeypatch):
    """A ``testing:`` folder left half-written by a killed run (no marker file) is rewritten, not trusted,
    and the staging folder it was written in is gone afterwards (compared against the marker file's
    presence and the cache folder's listing)."""
    from rewardkit.testing import cached_tiny_model

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path))
    broken = tmp_path / "bright-dark"
    broken.mkdir()
    (broken / "clips.csv").write_text("path,prompt\n")  # a leftover, but the marker below is missing
    folder = cached_tiny_model("bright-dark", "pairs.jsonl")
    assert folder == broken and (folder / "pairs.jsonl").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bright-dark"]
    assert cached_tiny_model("bright-dark", "pairs.jsonl") == folder  # second call: the cached copy


def test_tiny_model_cache_rewrites_a_copy_from_an_older_revision(tmp_path, monkeypatch):
    """A complete ``testing:`` folder written by an older revision of its writer (TINY_MODEL_REVISIONS; no
    ``revision.txt`` means 1) is written again; one of the current revision is reused (compared against a
    file planted in the old copy)."""
    import rewardkit.testing as testing

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path))
    folder = testing.cached_tiny_model("bright-dark", "pairs.jsonl")
    (folder / "planted.txt").write_text("old copy")
    assert testing.cached_tiny_model("bright-dark", "pairs.jsonl") == folder and (folder / "planted.txt").is_file()
    monkeypatch.setitem(testing.TINY_MODEL_REVISIONS, "bright-dark", 2)
    assert testing.cached_tiny_model("bright-dark", "pairs.jsonl") == folder
    assert not (folder / "planted.txt").exists() and (folder / "revision.txt").read_text().strip() == "2"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bright-dark"]
