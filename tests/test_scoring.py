"""`rewardkit score` and rewardkit.score: bad input, prompts, results tables, resume, invariance."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import rewardkit
from rewardkit.cli import main
from rewardkit.scoring import COLUMNS, score
from rewardkit.video.io import write_video

LONG_PROMPT = " ".join(["an extremely detailed cinematic shot of a mountain lake at sunrise"] * 10)


def moving_square(frames=16, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    video[...] = rng.integers(0, 60, size=3, dtype=np.uint8)
    for t in range(frames):
        x = 2 + 3 * t % (width - 16)
        video[t, 16:32, x : x + 12] = (220, 40, 40)
    return video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A folder with good and bad files, each named for the case it tests."""
    root = tmp_path_factory.mktemp("media")
    write_video(root / "a red square moving right-0.mp4", moving_square())
    write_video(root / "a red square moving right-1.mp4", moving_square(seed=1))
    good = (root / "a red square moving right-0.mp4").read_bytes()
    (root / "truncated video-0.mp4").write_bytes(good[: len(good) // 2])
    (root / "corrupt video-0.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "empty video-0.mp4").write_bytes(b"")
    write_video(root / "one frame video-0.mp4", moving_square(frames=1))
    rng = np.random.default_rng(1)
    images = {
        "gray.png": Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8), mode="L"),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), mode="RGBA"),
        "tiny.png": Image.fromarray(np.full((1, 1, 3), 200, dtype=np.uint8)),
        "huge.jpg": Image.fromarray(np.tile(rng.integers(0, 256, (1, 4000, 3), dtype=np.uint8), (3000, 1, 1))),
        "long prompt.png": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
        "no prompt.png": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
    }
    for name, image in images.items():
        image.save(root / name)
    for name in ("gray", "rgba", "tiny", "huge"):
        (root / f"{name}.txt").write_text(f"a {name} picture\n")
    (root / "long prompt.txt").write_text(LONG_PROMPT)
    (root / "notes.md").write_text("not media")
    return root


def run_cli(capsys, *args):
    code = main(["score", *map(str, args), "--no-progress", "--workers", "0"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def hps_args(tiny_rewards):
    options = tiny_rewards["hpsv2"]
    return ["--reward", f"hpsv2:architecture={options['architecture']}", "--weights", options["weights"]]


def test_quick_start_scores_examples_offline(capsys, tmp_path):
    out = tmp_path / "quick.csv"
    code, stdout, _ = run_cli(capsys, "examples/videos", "--out", out)
    assert code == 0
    assert "temporal_flickering" in stdout and "mean" in stdout
    table = pd.read_csv(out)
    assert set(table["status"]) == {"ok", "skipped"}  # the still image has no time axis
    flickering = table[table["reward"] == "temporal_flickering"]  # the default scores every weight-free metric
    static = flickering[flickering["path"].str.contains("static photo")]
    flicker = flickering[flickering["path"].str.contains("flickering light")]
    assert static["score"].item() == pytest.approx(1.0) and flicker["score"].item() < 0.95


def test_bad_files_are_failed_rows_and_the_run_goes_on(capsys, tmp_path, media, tiny_rewards):
    out = tmp_path / "bad.csv"
    code, stdout, stderr = run_cli(capsys, media, *hps_args(tiny_rewards), "--reward", "temporal_flickering", "--out", out)
    assert code == 1
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    rows = {(Path(row.path).name, row.reward): row for row in table.itertuples()}

    def status(name, reward="hpsv2"):
        return rows[(name, reward)].status, rows[(name, reward)].error

    assert status("a red square moving right-0.mp4") == ("ok", "")
    assert status("a red square moving right-0.mp4", "temporal_flickering")[0] == "ok"
    for name, words in [("corrupt video-0.mp4", "DecodeError"), ("empty video-0.mp4", "empty"), ("truncated video-0.mp4", "DecodeError")]:
        for reward in ("hpsv2", "temporal_flickering"):
            got_status, error = status(name, reward)
            assert got_status == "failed" and words in error, (name, reward, error)
    assert status("one frame video-0.mp4") == ("failed", status("one frame video-0.mp4")[1])
    assert "needs at least 4 frame" in status("one frame video-0.mp4")[1]
    assert "at least 2" in status("one frame video-0.mp4", "temporal_flickering")[1]
    for name in ("gray.png", "rgba.png", "tiny.png", "huge.jpg", "long prompt.png"):
        assert status(name)[0] == "ok", status(name)
        assert status(name, "temporal_flickering")[0] == "skipped"
    assert status("no prompt.png")[0] == "failed" and "no prompt" in status("no prompt.png")[1]
    assert "truncated" in rows[("long prompt.png", "hpsv2")].warning
    assert not any(name == "notes.md" for name, _ in rows)
    assert "skipped 1 non-media file" in stderr and "failed:" in stderr
    summary_line = next(line for line in stdout.splitlines() if line.startswith("hpsv2") or " hpsv2 " in line)
    assert summary_line.split()[-1] == "1"  # one truncated prompt counted in the summary


def test_explicit_non_media_file_is_a_failed_row(capsys, media):
    code, _, stderr = run_cli(capsys, media / "notes.md")
    assert code == 1 and "is not an image or video" in stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--reward", "hpsv3"], "Did you mean 'hpsv2'"),
        (["--reward", "hpsv2:verison=v2.0"], "Did you mean 'version'"),
        (["--reward", "hpsv2"], "rewardkit download hpsv2"),
        (["--frames", "every-other"], "segmental:S"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(capsys, arguments, message):
    code, _, stderr = run_cli(capsys, "examples/videos", *arguments)
    assert code == 2 and message in stderr


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as raised:
        main(["score", "examples/videos", "--batch-size", "many"])
    assert raised.value.code == 2


def test_prompt_sources_and_their_precedence(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a cat-0.png", "b.png", "c.png", "d-3.png"):
        Image.new("RGB", (8, 8)).save(folder / name)
    (folder / "c.txt").write_text("prompt from sidecar\n")
    (folder / "d-3.txt").write_text("sidecar beats file name")
    table = tmp_path / "prompts.csv"
    table.write_text("path,prompt\nclips/b.png,prompt from table\n")
    from rewardkit.scoring import find_prompt, load_prompt_table

    prompts = load_prompt_table(table)
    assert find_prompt(str(folder / "a cat-0.png"), prompts) == "a cat"
    assert find_prompt(str(folder / "b.png"), prompts) == "prompt from table"
    assert find_prompt(str(folder / "c.png"), prompts) == "prompt from sidecar"
    assert find_prompt(str(folder / "d-3.png"), prompts) == "sidecar beats file name"
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(json.dumps({"path": str(folder / "c.png"), "prompt": "table beats sidecar"}) + "\n")
    assert find_prompt(str(folder / "c.png"), load_prompt_table(jsonl)) == "table beats sidecar"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,text\nx,y\n")
    with pytest.raises(ValueError, match="needs the fields 'path' and 'prompt'"):
        load_prompt_table(bad)


def test_prompts_file_from_the_cli(capsys, tmp_path, tiny_rewards):
    code, _, _ = run_cli(capsys, "examples/videos", *hps_args(tiny_rewards), "--prompts", "examples/prompts.csv", "--out", tmp_path / "r.csv")
    assert code == 0
    table = pd.read_csv(tmp_path / "r.csv")
    assert (table["status"] == "ok").all() and table["prompt"].notna().all()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_output_formats_load_with_pandas_and_agree(tmp_path, tiny_rewards, suffix):
    kwargs = {"rewards": [f"hpsv2:architecture={tiny_rewards['hpsv2']['architecture']}", "temporal_flickering"],
              "weights": {"hpsv2": tiny_rewards["hpsv2"]["weights"]}, "workers": 0, "progress": False}
    reference = rewardkit.score("examples/videos", out=tmp_path / "r.csv", **kwargs)
    other = rewardkit.score("examples/videos", out=tmp_path / f"r{suffix}", **kwargs)
    loaded = pd.read_parquet(tmp_path / "r.parquet") if suffix == ".parquet" else pd.read_json(tmp_path / "r.jsonl", lines=True)
    assert list(loaded.columns) == COLUMNS and len(loaded) == len(reference) == 10
    merged = reference.merge(loaded, on=["path", "reward"])
    assert np.allclose(merged["score_x"].astype(float), merged["score_y"].astype(float), equal_nan=True)
    assert not (tmp_path / f"r{suffix}.partial.jsonl").exists()
    assert np.allclose(other["score"].astype(float), reference["score"].astype(float), equal_nan=True)


def test_scores_do_not_change_with_batch_size_or_workers(tmp_path, tiny_rewards):
    kwargs = {"rewards": [f"hpsv2:architecture={tiny_rewards['hpsv2']['architecture']}"],
              "weights": {"hpsv2": tiny_rewards["hpsv2"]["weights"]}, "frames": "segmental:4:random",
              "weighting": "tar:1.0", "seed": 3, "progress": False, "prompts": "examples/prompts.csv"}
    serial = rewardkit.score("examples/videos", workers=0, batch_size=1, **kwargs).sort_values("path")
    parallel = rewardkit.score("examples/videos", workers=2, batch_size=16, **kwargs).sort_values("path")
    assert (serial["status"] == "ok").all()
    assert np.allclose(serial["score"].astype(float), parallel["score"].astype(float), atol=1e-6)
    reseeded = rewardkit.score("examples/videos", workers=0, **{**kwargs, "seed": 4}).sort_values("path")
    videos = serial["path"].str.endswith(".mp4").to_numpy()
    assert not np.allclose(serial["score"].to_numpy()[videos], reseeded["score"].to_numpy()[videos])


def test_rerun_skips_finished_rows_and_interrupted_runs_resume(capsys, tmp_path, monkeypatch, tiny_rewards):
    from rewardkit.scoring import engine

    arguments = ["examples/videos", *hps_args(tiny_rewards), "--reward", "temporal_flickering", "--prompts", "examples/prompts.csv"]
    complete = tmp_path / "complete.csv"
    assert run_cli(capsys, *arguments, "--out", complete)[0] == 0

    interrupted = tmp_path / "interrupted.csv"
    emitted = []
    original = engine.Engine._emit

    def emit_then_interrupt(self, row, **kwargs):
        if len(emitted) == 3:
            raise KeyboardInterrupt
        emitted.append(row)
        original(self, row, **kwargs)

    monkeypatch.setattr(engine.Engine, "_emit", emit_then_interrupt)
    code, _, stderr = run_cli(capsys, *arguments, "--out", interrupted)
    assert code == 130 and "resume" in stderr
    assert len(pd.read_csv(interrupted)) == 3
    monkeypatch.setattr(engine.Engine, "_emit", original)

    first_rows = pd.read_csv(interrupted)
    assert run_cli(capsys, *arguments, "--out", interrupted)[0] == 0
    resumed = pd.read_csv(interrupted)
    assert len(resumed) == 10 and not resumed.duplicated(["path", "reward", "options"]).any()
    kept = resumed.merge(first_rows, on=["path", "reward"])
    assert (kept["seconds_x"] == kept["seconds_y"]).all(), "finished rows are not recomputed"
    merged = resumed.merge(pd.read_csv(complete), on=["path", "reward"])
    assert np.allclose(merged["score_x"], merged["score_y"], equal_nan=True, atol=1e-6)

    before = pd.read_csv(interrupted)
    calls = []
    monkeypatch.setattr(engine.Engine, "_accept", lambda self, decoded: calls.append(decoded))
    assert run_cli(capsys, *arguments, "--out", interrupted)[0] == 0
    assert calls == [] and pd.read_csv(interrupted).equals(before)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_process_loses_no_finished_row(tmp_path, tiny_rewards, sig):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(30):
        write_video(folder / f"a red square moving right-{index}.mp4", moving_square(seed=index))
    out = tmp_path / "killed.jsonl"
    command = [sys.executable, "-m", "rewardkit.cli", "score", str(folder), *hps_args(tiny_rewards),
               "--workers", "0", "--batch-size", "1", "--no-progress", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(sig)
    process.wait(timeout=60)
    if sig == signal.SIGTERM:
        assert process.returncode == 130
    survivors = [json.loads(line) for line in out.read_text().splitlines() if line.strip().endswith("}")]
    assert 3 <= len(survivors) < 30
    finished = subprocess.run(command, capture_output=True, env=os.environ.copy(), timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    table = pd.read_json(out, lines=True)
    assert len(table) == 30 and (table["status"] == "ok").all()
    by_path = table.set_index("path")
    for row in survivors:
        assert by_path.loc[row["path"], "score"] == pytest.approx(row["score"], abs=1e-7)
        assert by_path.loc[row["path"], "seconds"] == pytest.approx(row["seconds"]), "survivor rows are kept, not redone"


def test_a_reward_that_does_not_apply_gives_a_skipped_row(tmp_path):
    """VBench's flicker with the static filter leaves moving videos out: skipped, with the reason, not
    failed; a static video is scored."""
    write_video(tmp_path / "moving.mp4", moving_square(frames=16, height=64, width=96))
    write_video(tmp_path / "static.mp4", np.repeat(moving_square(frames=1, height=64, width=96), 16, axis=0))
    table = score(tmp_path, ["temporal_flickering:static_filter=flow"], workers=0, progress=False).set_index("path")
    moving, static = table.loc[str(tmp_path / "moving.mp4")], table.loc[str(tmp_path / "static.mp4")]
    assert moving["status"] == "skipped" and "static" in moving["error"] and np.isnan(moving["score"])
    assert static["status"] == "ok" and static["score"] == pytest.approx(1.0)
