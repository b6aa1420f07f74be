"""`rewardkit score` across processes (per-process journals merged by the main process) and manifests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardkit.cli import main
from rewardkit.errors import UserInputError
from rewardkit.scoring import engine, score
from rewardkit.scoring.inputs import read_manifest
from rewardkit.scoring.results import shard_journal
from tests.distributed import torchrun

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "videos"
KEY = ["path", "reward"]


def _table(path: Path) -> pd.DataFrame:
    table = pd.read_json(path, lines=True, dtype={"weights_sha256": str})
    return table.drop(columns=["seconds"]).sort_values(KEY).reset_index(drop=True)


@pytest.mark.slow  # two torchrun processes that each import torch and build hpsv2: ~20 s on an idle machine
def test_two_real_processes_give_the_one_process_rows(tmp_path, tiny_rewards):
    """`torchrun --nproc_per_node 2` (gloo on CPU) of `rewardkit score`: each process scores its share into
    its own journal, rank 0 merges them into the one --out and reports every file; the rows equal a
    one-process run of the same command (independent reference: the same CLI in one process)."""
    hps = tiny_rewards["hpsv2"]
    arguments = ["score", str(EXAMPLES), "--reward", "temporal_flickering", "--reward",
                 f"hpsv2:architecture={hps['architecture']}", "--weights", hps["weights"], "--workers", "0",
                 "--no-progress"]
    command = torchrun(*arguments, "--out", str(tmp_path / "two.jsonl"))
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert main([*arguments, "--out", str(tmp_path / "one.jsonl")]) == 0
    one, two = _table(tmp_path / "one.jsonl"), _table(tmp_path / "two.jsonl")
    assert len(one) == 10 and not list(tmp_path.glob("two.jsonl.rank*"))  # 5 files x 2 rewards, journals merged
    # The summary is printed once (rank 0) and counts both shares.
    assert finished.stdout.count("results:") == 1 and "(10 rows)" in finished.stdout
    pd.testing.assert_frame_equal(one.drop(columns=["score"]), two.drop(columns=["score"]))
    # Shares batch different frames together for hpsv2; BLAS sums then differ by ~1e-7 (see test_eval).
    np.testing.assert_allclose(one["score"], two["score"], atol=1e-6, equal_nan=True)
    flicker = one["reward"] == "temporal_flickering"
    assert one.loc[flicker, "score"].equals(two.loc[flicker, "score"])  # no batching: bit-identical


def test_rerun_resumes_from_the_journals_of_a_dead_multi_process_run(tmp_path, monkeypatch):
    """A two-process run that died leaves `OUT.rank0.jsonl` and `OUT.rank1.jsonl` (here written by hand
    from a finished one-process run, the reference); a rerun, with any number of processes, scores only
    what no journal holds, merges every journal into --out and removes them."""
    reference = score(EXAMPLES, ["temporal_flickering"], workers=0, progress=False)
    lines = [json.dumps({key: None if value != value else value for key, value in row.items()})
             for row in reference.to_dict("records")]  # as a process's journal holds them (exact floats)
    out = tmp_path / "results.csv"
    shard_journal(out, 0).write_text(lines[0] + "\n" + lines[1] + "\n")
    shard_journal(out, 1).write_text(lines[3] + "\n" + lines[4][: len(lines[4]) // 2])  # torn last line: redone
    rescored = []
    accept = engine.Engine._accept
    monkeypatch.setattr(engine.Engine, "_accept", lambda self, decoded: (rescored.append(self.items[decoded["position"]].path), accept(self, decoded)))
    resumed = score(EXAMPLES, ["temporal_flickering"], out=out, workers=0, progress=False)
    expected = {json.loads(lines[2])["path"], reference["path"].iloc[4]}
    assert set(rescored) == expected
    assert not list(tmp_path.glob("results.csv.rank*"))
    written = pd.read_csv(out).sort_values("path").reset_index(drop=True)
    assert written["path"].tolist() == sorted(reference["path"])
    assert written["score"].equals(reference.sort_values("path")["score"].reset_index(drop=True))
    assert len(resumed) == 5


def test_manifest_text_and_csv(tmp_path):
    """A manifest lists files as given (relative to its folder, comments and blanks left out, a CSV's
    `path` column); listed files are scored in the manifest's order and a missing one is a failed row
    (reference: the same files scored by folder walk)."""
    names = sorted(path.name for path in EXAMPLES.glob("*.mp4"))
    text = tmp_path / "list.txt"
    text.write_text("# generated videos\n" + "".join(f"{EXAMPLES / name}\n\n" for name in names) + "missing.mp4\n")
    listed = read_manifest(text)
    assert listed == [str(EXAMPLES / name) for name in names] + [str(tmp_path / "missing.mp4")]
    table = tmp_path / "list.csv"
    pd.DataFrame({"prompt": ["p"] * len(names), "path": [str(EXAMPLES / name) for name in names]}).to_csv(table, index=False)
    assert read_manifest(table) == listed[:-1]
    results = score([], ["temporal_flickering"], manifest=text, workers=0, progress=False)
    walked = score(EXAMPLES, ["temporal_flickering"], workers=0, progress=False).set_index("path")
    ok = results[results["status"] == "ok"]
    assert ok["path"].tolist() == listed[:-1]
    assert ok["score"].tolist() == walked.loc[ok["path"], "score"].tolist()
    assert results.set_index("path").loc[listed[-1], "status"] == "failed"
    bad = tmp_path / "list.json"
    bad.write_text("[]")
    with pytest.raises(UserInputError, match=r"must be \.txt"):
        read_manifest(bad)
    no_column = tmp_path / "files.csv"
    no_column.write_text("file\na.mp4\n")
    with pytest.raises(UserInputError, match="'path' column"):
        read_manifest(no_column)


def test_cli_manifest_needs_paths_or_a_manifest(tmp_path, capsys):
    """`rewardkit score` with neither paths nor --manifest is a usage error (exit 2) saying what to give."""
    assert main(["score"]) == 2
    assert "--manifest" in capsys.readouterr().err
