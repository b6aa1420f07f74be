"""Issue 12: no single input stops a run, no torn row blocks a resume, nothing wrong is recorded as ``ok``.

Every input is generated here. Each test names what it checks against: the number of files written (one
row per file), an error message the user must see, the bytes of a file before and after, or the same
scores from an undisturbed run.
"""

import csv
import errno
import faulthandler
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rewardkit.cli import main
from rewardkit.scoring import engine, results
from rewardkit.scoring.inputs import collect_media, is_frame_folder, load_prompt_table
from rewardkit.scoring.results import ResultsWriter, escape_text, journal_records, read_journal
from rewardkit.video.io import write_video

FLICKER = "temporal_flickering"
BAD_NAME = os.fsdecode(b"bad\xff\xfe.mp4")  # not UTF-8: Python holds it with surrogate escapes


def clip(path, frames=6, seed=0):
    """A tiny moving clip (lossy, so every clip flickers a little and scores below 1)."""
    rng = np.random.default_rng(seed)
    video = np.repeat(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8), frames, axis=0)
    for t in range(frames):
        video[t, 8:16, 2 * t : 2 * t + 8] = 255
    write_video(path, video)
    return path


def image(path, size=(24, 24), seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *args, workers=0):
    code = main(["score", *map(str, args), "--no-progress", "--workers", str(workers)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def hps(tiny_rewards):
    options = tiny_rewards["hpsv2"]
    return ["--reward", f"hpsv2:architecture={options['architecture']}", "--weights", f"hpsv2={options['weights']}"]


def rows_by_name(table):
    return {(Path(row.path).name, row.reward): row for row in table.itertuples()}


def read_csv(path):
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def crash_on(name, monkeypatch):
    """Make decoding ``name`` abort the process, as a decoder hitting ``std::bad_alloc`` does (SIGABRT)."""
    real_open = engine.open_media

    def open_media(path, **options):
        if Path(path).name == name:
            faulthandler.disable()  # pytest's dump of the aborting worker would only be noise
            os.abort()
        return real_open(path, **options)

    monkeypatch.setattr(engine, "open_media", open_media)


def deny_folder(folder, monkeypatch):
    """Make ``folder`` unreadable: chmod 000, and for root (whom chmod does not stop) os.scandir refuses it."""
    folder.chmod(0)
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.realpath(path) == os.path.realpath(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


# ------------------------------------------------------------------------ §1 one input never stops a run


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_name_that_is_not_utf8_is_scored_and_its_row_round_trips(capsys, tmp_path, suffix):
    """Compared against: the escaped form ``escape_text`` documents (``\\xHH`` per undecodable byte), and a
    rerun finding the row done (the resume key matches the file on disk)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    clip(folder / BAD_NAME)
    clip(folder / "good.mp4", seed=1)
    out = tmp_path / f"out{suffix}"
    code, _, err = run(capsys, folder, "--reward", FLICKER, "--out", out)
    assert code == 0, err
    table = read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True)
    assert set(table["status"]) == {"ok"} and len(table) == 2
    assert str(folder / "bad\\xff\\xfe.mp4") in set(table["path"])
    code, _, err = run(capsys, folder, "--reward", FLICKER, "--out", out)
    assert code == 0 and "2 of 2 rows already done" in err


def test_a_symlink_loop_is_that_files_failed_row(capsys, tmp_path):
    """Compared against: one row per file, the loop's row failed, the other scored."""
    clip(tmp_path / "good.mp4")
    (tmp_path / "x.mp4").symlink_to("x.mp4")
    code, out, err = run(capsys, tmp_path, "--reward", FLICKER)
    assert code == 1
    assert "x.mp4" in err and "failed" in err
    assert "good.mp4" in out


def test_a_sidecar_that_is_not_utf8_or_unreadable(capsys, tmp_path, tiny_rewards, monkeypatch):
    """A reward needing the prompt: a failed row naming the sidecar; one that does not: scored, with a
    warning in the row and no prompt."""
    image(tmp_path / "latin1.png")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    image(tmp_path / "locked.png", seed=1)
    (tmp_path / "locked.txt").write_text("a locked prompt")
    clip(tmp_path / "clip.mp4")
    (tmp_path / "clip.txt").write_bytes(b"\xff\xfe\x00")
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if self.name == "locked.txt" else real_read(self))
    out = tmp_path / "out.csv"
    code, _, err = run(capsys, tmp_path, *hps(tiny_rewards), "--reward", FLICKER, "--out", out)
    assert code == 1, err
    rows = rows_by_name(read_csv(out))
    assert rows[("latin1.png", "hpsv2")].status == "failed" and "latin1.txt is not UTF-8" in rows[("latin1.png", "hpsv2")].error
    assert rows[("locked.png", "hpsv2")].status == "failed" and "Permission denied" in rows[("locked.png", "hpsv2")].error
    flicker = rows[("clip.mp4", FLICKER)]
    assert flicker.status == "ok" and "clip.txt is not UTF-8" in flicker.warning and pd.isna(flicker.prompt)


def test_a_prompt_with_a_lone_surrogate_is_scored_and_written(capsys, tmp_path, tiny_rewards):
    """A JSONL prompt table may hold ``\\ud800`` (valid JSON, not valid UTF-8): every file gets its row
    and the results file reads back, the prompt in the escaped form."""
    image(tmp_path / "a.png")
    image(tmp_path / "b.png", seed=1)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"path": "a.png", "prompt": "a cat \\ud800"}\n{"path": "b.png", "prompt": "a dog"}\n')
    for suffix in (".csv", ".jsonl"):
        out = tmp_path / f"out{suffix}"
        code, _, err = run(capsys, tmp_path, *hps(tiny_rewards), "--prompts", prompts, "--out", out)
        table = read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True)
        assert len(table) == 2 and code in (0, 1), err
        assert "a cat \\ud800" in set(table["prompt"])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_decoder_crash_is_that_files_failed_row_and_the_run_goes_on(capsys, tmp_path, monkeypatch, workers):
    """Decoding one file aborts the process (SIGABRT): that file is a failed row, every other file is
    scored (compared against the same files scored without the crashing one)."""
    for index in range(4):
        clip(tmp_path / f"clip{index}.mp4", seed=index)
    clip(tmp_path / "clip1b.mp4", seed=9)  # sorted between clip1 and clip2
    reference = tmp_path / "reference.csv"
    code, _, _ = run(capsys, tmp_path, "--reward", FLICKER, "--out", reference, workers=workers)
    assert code == 0
    crash_on("clip1b.mp4", monkeypatch)
    out = tmp_path / "crash.csv"
    code, _, err = run(capsys, *sorted(tmp_path.glob("*.mp4")), "--reward", FLICKER, "--out", out, workers=workers)
    assert code == 1
    rows = rows_by_name(read_csv(out))
    assert len(rows) == 5
    crashed = rows[("clip1b.mp4", FLICKER)]
    assert crashed.status == "failed" and "crashed" in crashed.error
    expected = rows_by_name(read_csv(reference))
    for index in range(4):
        name = (f"clip{index}.mp4", FLICKER)
        assert rows[name].status == "ok" and rows[name].score == expected[name].score


def test_an_unreadable_subfolder_is_counted_and_reported(capsys, tmp_path, monkeypatch):
    """Compared against: the one readable video scored, the locked folder named in the report."""
    clip(tmp_path / "open.mp4")
    locked = tmp_path / "locked"
    locked.mkdir()
    clip(locked / "hidden.mp4")
    deny_folder(locked, monkeypatch)
    try:
        code, out, err = run(capsys, tmp_path, "--reward", FLICKER)
    finally:
        locked.chmod(0o755)
    assert code == 0
    assert "could not read 1 folder(s)" in err and "locked" in err
    assert "open.mp4" in out


# ------------------------------------------------------------------------------- §3 the results file


def journal_rows(suffix):
    """Three rows whose paths hold a newline, quotes and a comma (a CSV record spanning two lines)."""
    return [
        {column: "" for column in results.COLUMNS}
        | {"path": f'/v/clip "{index}",\nx.mp4', "reward": FLICKER, "options": "{}", "status": "ok",
           "score": 0.1 + index / 3, "n_frames": 6, "seconds": 0.5}
        for index in range(3)
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_the_journal_drops_a_torn_record_at_every_byte_offset(tmp_path, suffix):
    """Truncate a results file at every byte offset inside its last two rows: the reader keeps exactly the
    rows complete before the cut (compared with the rows written), a resumed writer cuts the torn tail off
    and its next row reads back intact."""
    out = tmp_path / f"journal{suffix}"
    writer = ResultsWriter(out)
    writer.open()
    sizes = []
    for row in journal_rows(suffix):
        writer.write(row)
        sizes.append(out.stat().st_size)
    writer.close(None)
    data = out.read_bytes()
    expected = [row["score"] for row in journal_rows(suffix)]
    for cut in range(sizes[0], len(data)):
        out.write_bytes(data[:cut])
        records, end = journal_records(out)
        complete = sum(size <= cut for size in sizes)
        assert len(records) == complete and end == sizes[complete - 1], cut
        assert [float(record["score"]) for record in records] == expected[:complete], cut
    for cut in (sizes[1] - 1, sizes[1], sizes[1] + 1):  # the table a resume reads, at a few cuts
        out.write_bytes(data[:cut])
        assert list(read_journal(out)[0]["score"]) == expected[: sum(size <= cut for size in sizes)]
    out.write_bytes(data[: sizes[1] + 7])  # torn inside the third row
    writer = ResultsWriter(out)
    writer.open()
    writer.write(journal_rows(suffix)[2])
    writer.close(None)
    assert out.read_bytes() == data


def test_a_torn_results_file_resumes_end_to_end(capsys, tmp_path):
    """A few cuts through a real results file (inside a quoted field, after a row, mid-number): each
    rerun ends with one ok row per file and the scores of an undisturbed run."""
    for index in range(3):
        clip(tmp_path / f'odd, "name"\n{index}.mp4', seed=index)
    reference = tmp_path.parent / f"{tmp_path.name}-reference.csv"
    assert run(capsys, tmp_path, "--reward", FLICKER, "--out", reference)[0] == 0
    expected = read_csv(reference).set_index("path")["score"]
    data = reference.read_bytes()
    last_row = data.rindex(b'\n"', 0, len(data) - 2) + 1
    for cut in (last_row + 3, last_row, len(data) - 5, data.index(b"\n") + 10):
        out = tmp_path.parent / f"{tmp_path.name}-cut{cut}.csv"
        out.write_bytes(data[:cut])
        code, _, err = run(capsys, tmp_path, "--reward", FLICKER, "--out", out)
        assert code == 0, err
        table = read_csv(out)
        assert len(table) == 3 and (table["status"] == "ok").all()
        assert (table.set_index("path")["score"] == expected.loc[table["path"]].values).all()


def test_a_full_disk_is_a_clear_error_and_the_file_resumes(capsys, tmp_path, monkeypatch):
    """ENOSPC on the second row (half of it written) and then while writing the final file: exit 2, the
    reason and how to resume, no traceback, no ``.tmp``; the rerun completes every row."""
    for index in range(3):
        clip(tmp_path / f"clip{index}.mp4", seed=index)
    out = tmp_path / "out.jsonl"
    real_append = ResultsWriter._append
    calls = []

    def full_disk(self, text):
        calls.append(text)
        if len(calls) == 2:
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, text)

    monkeypatch.setattr(ResultsWriter, "_append", full_disk)
    code, _, err = run(capsys, tmp_path, "--reward", FLICKER, "--out", out)
    assert code == 2 and "No space left on device" in err and "resume" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.tmp")) and len(read_journal(out)[0]) == 1
    monkeypatch.setattr(ResultsWriter, "_append", real_append)

    def full_disk_at_the_end(table, path):
        Path(path).write_text("half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "write_jsonl", full_disk_at_the_end)
    code, _, err = run(capsys, tmp_path, "--reward", FLICKER, "--out", out)
    assert code == 2 and "No space left on device" in err
    assert not list(tmp_path.glob("*.tmp")) and len(read_journal(out)[0]) == 3
    monkeypatch.undo()
    code, _, err = run(capsys, tmp_path, "--reward", FLICKER, "--out", out)
    assert code == 0 and "3 of 3 rows already done" in err
    assert len(pd.read_json(out, lines=True)) == 3


def test_a_second_process_on_the_same_out_is_refused(tmp_path):
    """Two real processes: while one holds ``OUT.lock`` (an exclusive flock, as a scoring run takes it),
    ``rewardkit score`` with that ``--out`` exits 2 naming the lock and writes nothing; two writers in one
    process exclude each other the same way, and a finished run leaves no lock file."""
    clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out) + '.lock'!r}, os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, str(os.getpid()).encode())\nprint('locked', flush=True)\ntime.sleep(900)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-m", "rewardkit.cli", "score", str(tmp_path / "clip.mp4"), "--reward", FLICKER,
             "--workers", "0", "--no-progress", "--out", str(out)],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stderr
    assert "out.csv.lock" in second.stderr and f"process {holder.pid}" in second.stderr and not out.exists()
    first, again = ResultsWriter(out), ResultsWriter(out)
    first.open()
    with pytest.raises(results.ResultsWriteError, match="another rewardkit run is writing"):
        again.open()
    first.close(None)
    assert not Path(str(out) + ".lock").exists()


def test_a_killed_run_leaves_no_lock_behind_in_its_decoding_workers(tmp_path):
    """A run killed while a forked worker lives on (DataLoader workers outlive a SIGKILLed parent for a
    moment): the worker does not keep ``OUT.lock``, so the rerun starts at once. (flock belongs to the open
    file, which a fork shares: before the fix the orphan held it and the rerun exited 2.)"""
    out = tmp_path / "out.jsonl"
    script = (
        "import os, sys, time\n"
        "from rewardkit.scoring.results import ResultsWriter\n"
        f"writer = ResultsWriter({str(out)!r})\nwriter.open()\n"
        "if os.fork() == 0:\n    os.close(1)\n    os.close(2)\n    time.sleep(60)\n    os._exit(0)\n"
        "print('forked', flush=True)\nos._exit(0)  # the run dies; its child lives on\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "forked", run.stderr
    rerun = ResultsWriter(out)
    rerun.open()  # raised ResultsWriteError("another rewardkit run is writing ...") before the fix
    rerun.close(None)


def test_out_that_cannot_be_written_is_an_error_before_any_model_loads(capsys, tmp_path, monkeypatch):
    """``--out`` naming a folder, or in a folder nobody may write (/sys refuses even root): exit 2 with the
    reason, and no reward is built."""
    clip(tmp_path / "clip.mp4")
    monkeypatch.setattr(engine, "build_slots", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    code, _, err = run(capsys, tmp_path / "clip.mp4", "--reward", FLICKER, "--out", tmp_path)
    assert code == 2 and "is a folder" in err
    if os.geteuid() == 0:
        read_only = Path("/sys/rewardkit-results.csv")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        read_only = tmp_path / "ro" / "results.csv"
    code, _, err = run(capsys, tmp_path / "clip.mp4", "--reward", FLICKER, "--out", read_only)
    assert code == 2 and "cannot write" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- §4 nothing wrong is ok


def test_a_prompt_table_row_without_a_prompt_is_missing(capsys, tmp_path, tiny_rewards):
    """``"prompt": null``, no prompt field, an empty CSV cell: failed rows (never the prompt "None")."""
    for name in ("null.png", "absent.png", "empty.png", "fine.png"):
        image(tmp_path / name)
    table = tmp_path / "prompts.jsonl"
    table.write_text('{"path": "null.png", "prompt": null}\n{"path": "absent.png"}\n{"path": "fine.png", "prompt": "a cat"}\n')
    csv_table = tmp_path / "prompts.csv"
    csv_table.write_text("path,prompt\nempty.png,\n")
    assert load_prompt_table(table)[os.path.realpath(tmp_path / "null.png")] is None
    assert load_prompt_table(csv_table)[os.path.realpath(tmp_path / "empty.png")] is None
    out = tmp_path / "out.csv"
    code, _, _ = run(capsys, *(tmp_path / name for name in ("null.png", "absent.png", "fine.png")), *hps(tiny_rewards),
                     "--prompts", table, "--out", out)
    assert code == 1
    rows = rows_by_name(read_csv(out))
    for name in ("null.png", "absent.png"):
        assert rows[(name, "hpsv2")].status == "failed" and "has no prompt" in rows[(name, "hpsv2")].error
        assert pd.isna(rows[(name, "hpsv2")].prompt)
    assert rows[("fine.png", "hpsv2")].status == "ok"


def test_a_non_finite_score_is_never_ok(capsys, tmp_path, monkeypatch):
    """A reward returning NaN or inf: failed rows saying so (compared with the value returned)."""
    clip(tmp_path / "a.mp4")
    clip(tmp_path / "b.mp4", seed=1)
    values = iter([math.nan, math.inf])
    # temporal_flickering streams: it is scored in the decoding worker (forked after this patch)
    from rewardkit.rewards.flicker import TemporalFlickering

    monkeypatch.setattr(TemporalFlickering, "score_stream", lambda *args: {"score": next(values)})
    code, _, err = run(capsys, tmp_path, "--reward", FLICKER)
    assert code == 1 and "non-finite score (nan)" in err and "non-finite score (inf)" in err


def test_a_negative_seed_is_one_usage_error(capsys, tmp_path):
    clip(tmp_path / "a.mp4")
    code, out, err = run(capsys, tmp_path, "--reward", FLICKER, "--seed", "-1")
    assert code == 2 and err.count("\n") == 1 and "--seed must be 0 or more" in err and out == ""


def test_a_folder_of_images_is_images_and_a_numbered_sub_folder_is_one_video(tmp_path):
    """Photos of different sizes in a folder named on the command line: one row each. A sub-folder of
    numbered frames: one video. A sub-folder of other images: its images one by one."""
    image(tmp_path / "cat.png", (30, 20))
    image(tmp_path / "dog.jpg", (16, 40))
    (tmp_path / "frames").mkdir()
    for index in range(4):
        image(tmp_path / "frames" / f"frame_{index:03d}.png", seed=index)
    (tmp_path / "holiday").mkdir()
    image(tmp_path / "holiday" / "beach.png")
    image(tmp_path / "holiday" / "sunset2.png")
    media, _ = collect_media([tmp_path])
    assert sorted(Path(path).relative_to(tmp_path).as_posix() for path in media) == [
        "cat.png", "dog.jpg", "frames", "holiday/beach.png", "holiday/sunset2.png"
    ]
    assert is_frame_folder(tmp_path / "frames") and collect_media([tmp_path / "frames"])[0] == [str(tmp_path / "frames")]
    from rewardkit.scoring import score

    table = score(tmp_path, [FLICKER], workers=0, progress=False).set_index("path")
    assert table.loc[str(tmp_path / "frames"), "status"] == "ok" and table.loc[str(tmp_path / "frames"), "n_frames"] == 4
    assert (table.drop(index=str(tmp_path / "frames"))["status"] == "skipped").all()  # still images


# --------------------------------------------------------------------------- §5 damaged inputs


@pytest.mark.parametrize("damage", ["truncated", "zero-byte", "lying header"])
def test_a_damaged_safetensors_file_says_so(capsys, tmp_path, tiny_rewards, damage):
    good = Path(tiny_rewards["clip"]["weights"]).read_bytes()
    damaged = tmp_path / "open_clip_model.safetensors"
    if damage == "truncated":
        damaged.write_bytes(good[: len(good) // 2])
    elif damage == "zero-byte":
        damaged.write_bytes(b"")
    else:
        header_size = int.from_bytes(good[:8], "little")
        header = json.loads(good[8 : 8 + header_size])
        name = next(key for key in header if key != "__metadata__")
        header[name]["data_offsets"][1] += 10**9
        text = json.dumps(header).encode()
        damaged.write_bytes(len(text).to_bytes(8, "little") + text + good[8 + header_size :])
    image(tmp_path / "a.png")
    code, _, err = run(capsys, tmp_path / "a.png", "--reward", f"clip:architecture={tiny_rewards['clip']['architecture']}",
                       "--weights", f"clip={damaged}")
    assert code == 2 and "damaged" in err and "rewardkit download clip" in err and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", np.random.default_rng(0).bytes(4096)], ids=["zero-byte", "random"])
def test_a_damaged_pt_file_says_so(capsys, tmp_path, tiny_rewards, content):
    damaged = tmp_path / "HPS_v2.1_compressed.pt"
    damaged.write_bytes(content)
    image(tmp_path / "a-0.png")
    options = tiny_rewards["hpsv2"]
    code, _, err = run(capsys, tmp_path / "a-0.png", "--reward", f"hpsv2:architecture={options['architecture']}",
                       "--weights", f"hpsv2={damaged}")
    assert code == 2 and "damaged" in err and "rewardkit download hpsv2" in err
    assert "pickled Python objects" not in err


def test_prompt_csv_encoding_bom_and_duplicates(capsys, tmp_path, tiny_rewards):
    """Not UTF-8: the error names the file and the line. A byte-order mark: read as if absent. A path
    listed twice: a warning (the last row wins)."""
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,prompt\na.png,a cat\nb.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: line 3 is not UTF-8"):
        load_prompt_table(latin)
    image(tmp_path / "a.png")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffpath,prompt\na.png,a cat\na.png,a black cat\n".encode())
    out = tmp_path / "out.csv"
    code, _, err = run(capsys, tmp_path / "a.png", *hps(tiny_rewards), "--prompts", bom, "--out", out)
    assert code == 0, err
    assert "'a.png' is listed on lines 2 and 3" in err
    assert read_csv(out)["prompt"].tolist() == ["a black cat"]


# ------------------------------------------------------------------------ §6 exactly once, exactly


def test_resume_is_keyed_on_the_resolved_path(capsys, tmp_path, monkeypatch):
    """Scored as ``myvids`` from its parent, then as the absolute path: no row twice, and the rerun says
    how many rows were done."""
    folder = tmp_path / "myvids"
    folder.mkdir()
    for index in range(2):
        clip(folder / f"clip{index}.mp4", seed=index)
    out = tmp_path / "out.csv"
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "myvids", "--reward", FLICKER, "--out", out)[0] == 0
    code, stdout, err = run(capsys, folder, "--reward", FLICKER, "--out", out)
    assert code == 0 and "2 of 2 rows already done" in err
    assert len(read_csv(out)) == 2 and "(2 rows)" in stdout


def test_jsonl_scores_round_trip_exactly_and_slashes_are_not_escaped(capsys, tmp_path):
    """The JSONL and CSV of one run hold the same doubles, bit for bit; paths are written as they are."""
    for index in range(3):
        clip(tmp_path / f"clip{index}.mp4", seed=index)
    jsonl, csv_out = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert run(capsys, tmp_path, "--reward", FLICKER, "--out", jsonl)[0] == 0
    assert run(capsys, tmp_path, "--reward", FLICKER, "--out", csv_out)[0] == 0
    text = jsonl.read_text()
    assert "\\/" not in text and str(tmp_path) in text
    from_jsonl = {json.loads(line)["path"]: json.loads(line)["score"] for line in text.splitlines()}
    with open(csv_out, newline="") as handle:
        from_csv = {row["path"]: float(row["score"]) for row in csv.DictReader(handle)}  # Python's exact parse
    assert from_jsonl == from_csv  # exact, not approx


# ------------------------------------------------------------------------------------ all together


def test_every_hostile_file_together_gives_one_row_per_file_and_exit_1(capsys, tmp_path, tiny_rewards, monkeypatch):
    """One folder holding every hostile input above: the run finishes with one row per file and reward
    (counted from the files written here) and exit 1."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    files = [
        clip(folder / "a good clip-0.mp4"),
        clip(folder / BAD_NAME, seed=1),
        image(folder / "latin1 sidecar.png"),
        image(folder / "null prompt.png", seed=2),
        image(folder / "lone surrogate.png", seed=3),
        clip(folder / "crash-0.mp4", seed=4),
    ]
    (folder / "latin1 sidecar.txt").write_bytes(b"caf\xe9")
    (folder / "loop.mp4").symlink_to("loop.mp4")
    files.append(folder / "loop.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    files.append(folder / "empty.mp4")
    (folder / "random.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    files.append(folder / "random.mp4")
    (folder / "frames").mkdir()
    for index in range(3):
        image(folder / "frames" / f"{index:04d}.png", seed=index)
    files.append(folder / "frames")
    locked = folder / "locked"
    locked.mkdir()
    clip(locked / "unseen-0.mp4")
    deny_folder(locked, monkeypatch)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"path": "hostile/null prompt.png", "prompt": null}\n'
                       '{"path": "hostile/lone surrogate.png", "prompt": "x \\udc80"}\n')
    crash_on("crash-0.mp4", monkeypatch)
    out = tmp_path / "out.csv"
    try:
        code, _, err = run(capsys, folder, *hps(tiny_rewards), "--reward", FLICKER, "--prompts", prompts, "--out", out,
                           workers=2)
    finally:
        locked.chmod(0o755)
    assert code == 1, err
    table = read_csv(out)
    assert len(table) == 2 * len(files) and not table.duplicated(["path", "reward"]).any()
    assert {escape_text(str(path)) for path in files} == set(table["path"])
    assert "could not read 1 folder(s)" in err
    assert (table[table["path"].str.endswith("a good clip-0.mp4")]["status"] == "ok").all()
