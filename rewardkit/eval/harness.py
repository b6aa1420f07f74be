"""``rewardkit eval``: score a folder of videos on a suite's dimensions and aggregate them VBench's way.

Each dimension runs through the scoring engine (``rewardkit.scoring.score``) into its own results file in
the run directory, so an interrupted run resumes per dimension and per video. Under ``accelerate
launch`` / ``torchrun`` each process scores its share of the videos on its own device and the main
process merges the shares (``rewardkit.distributed``, the same mechanism as ``rewardkit score``).
Random frame sampling is seeded per file, so the per-video scores, and hence every aggregate, do not
depend on the number of processes or DataLoader workers.

A run directory holds ``videos.csv`` (one row per video and dimension), ``dimensions.csv`` (per-dimension
aggregates, VBench-normalised where the dimension is VBench's), ``summary.json`` (totals, coverage,
settings) and ``dimensions/*.csv`` (the engine's resumable results).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import rewardkit
from rewardkit.distributed import processes
from rewardkit.errors import UserInputError
from rewardkit.eval.suite import Suite, load_suite
from rewardkit.eval.vbench import QUALITY, SEMANTIC, normalize, vbench_totals
from rewardkit.registry import parse_reward_spec
from rewardkit.scoring import collect_media, find_prompt, load_prompt_table, score
from rewardkit.weights import require_weights, weights_for

__all__ = ["EvalRun", "evaluate", "aggregate", "load_run"]


@dataclass
class EvalRun:
    """What ``evaluate`` returns (and ``load_run`` reads back): per-video rows, per-dimension
    aggregates and the summary (totals, coverage, settings)."""

    videos: pd.DataFrame
    dimensions: pd.DataFrame
    summary: dict[str, Any]
    path: Path | None = None


def _reward_spec(spec: str, extra: Mapping[str, str]) -> str:
    """A dimension's reward spec with the options given for it on the command line appended."""
    if not extra:
        return spec
    return spec + ("," if ":" in spec else ":") + ",".join(f"{key}={value}" for key, value in extra.items())


def evaluate(
    suite: str | os.PathLike[str] | Suite,
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    model_name: str | None = None,
    out: str | os.PathLike[str] | None = None,
    prompts: str | os.PathLike[str] | None = None,
    dimensions: Sequence[str] | None = None,
    weights: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    device: str | None = None,
    dtype: str = "fp32",
    batch_size: int = 8,
    workers: int | None = None,
    progress: bool = True,
    decode_device: str = "cpu",
) -> EvalRun:
    """Score ``videos`` on every dimension of ``suite`` and aggregate.

    ``weights`` maps a reward name to a weights path; ``options`` maps a dimension name to extra reward
    options (``{"hpsv2": {"version": "v2.0"}}``). ``out`` is the run directory (default
    ``runs/SUITE-MODEL``); rerunning with the same ``out`` resumes.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    suite.select([*(dimensions or []), *(options or {})])  # unknown names: an error before anything is scored
    if dimensions:
        suite = suite.select(list(dimensions))
    model_name = model_name or Path(videos if isinstance(videos, (str, os.PathLike)) else videos[0]).resolve().name
    run_dir = Path(out) if out is not None else Path("runs") / f"{suite.name}-{model_name}"
    group = processes()
    paths = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    media, _ = collect_media(paths)
    table = load_prompt_table(prompts) if prompts is not None else {}
    specs = {dimension.name: _reward_spec(dimension.reward, (options or {}).get(dimension.name, {})) for dimension in suite.dimensions}
    # Every missing weights file of the suite in one error, before anything is scored.
    require_weights(
        (name, spec_options, weights_for(name, spec_options, weights or {}))
        for name, spec_options in map(parse_reward_spec, specs.values())
    )
    prompt_of = {path: find_prompt(path, table) for path in media}
    parts = []
    for dimension in suite.dimensions:
        # A dimension with its own prompt list (VBench's) scores only the videos of those prompts.
        listed = set(dimension.prompts)
        chosen = [path for path in media if not listed or prompt_of[path] in listed]
        if not chosen:
            continue
        texts: Mapping[str, str] | None = table or None
        if dimension.prompt_key is not None and suite.vbench_info is not None:  # e.g. VBench's style text
            texts = {path: suite.vbench_info.auxiliary_text(dimension.name, prompt_of[path], dimension.prompt_key) for path in chosen}
        result = score(  # under several processes: each scores its share, every process gets all rows
            chosen,
            [specs[dimension.name]],
            prompts=texts,
            frames=dimension.frames,
            weighting=dimension.weighting,
            batch_size=batch_size,
            device=device or _default_device(),
            dtype=dtype,
            seed=suite.seed,
            out=run_dir / "dimensions" / f"{dimension.name}.csv",
            workers=workers,
            weights=weights,
            progress=progress,
            decode_device=decode_device,
        )
        parts.append(result.assign(dimension=dimension.name))
    per_video = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["path", "dimension", "status", "score", "n_frames"])
    run = aggregate(suite, per_video, model_name=model_name, prompt_of=prompt_of)
    run.summary |= {"settings": {"dtype": dtype, "batch_size": batch_size, "processes": group.world}}
    if group.is_main:
        _write_run(run, run_dir)
    group.barrier()
    run.path = run_dir
    return run


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def aggregate(
    suite: Suite, per_video: pd.DataFrame, *, model_name: str, prompt_of: Mapping[str, str | None] | None = None
) -> EvalRun:
    """Per-dimension aggregates, VBench normalisation and totals, and prompt coverage."""
    rows = []
    for dimension in suite.dimensions:
        group = per_video[per_video["dimension"] == dimension.name]
        ok = group[group["status"] == "ok"]
        scores = ok["score"].astype(float)
        if dimension.aggregate == "frame_pairs" and len(ok):
            pairs = (ok["n_frames"].astype(float) - 1).clip(lower=0)
            value = float((scores * pairs).sum() / pairs.sum()) if pairs.sum() > 0 else math.nan
        else:
            value = float(scores.mean()) if len(ok) else math.nan
        vbench_group = "quality" if dimension.name in QUALITY else "semantic" if dimension.name in SEMANTIC else ""
        rows.append({
            "dimension": dimension.name,
            "reward": dimension.reward,
            "score": value,
            "normalized": normalize(dimension.name, value) if dimension.vbench and not math.isnan(value) else math.nan,
            "vbench_group": vbench_group if dimension.vbench else "",
            "n": len(ok),
            "std": float(scores.std(ddof=1)) if len(ok) > 1 else math.nan,
            "failed": int((group["status"] == "failed").sum()),
            "skipped": int((group["status"] == "skipped").sum()),
            "tolerance": math.nan if dimension.tolerance is None else float(dimension.tolerance),
        })
    dimensions = pd.DataFrame(rows)
    vbench_scores = {
        row.dimension: row.score
        for row, dimension in zip(dimensions.itertuples(), suite.dimensions, strict=True)
        if dimension.vbench and not math.isnan(row.score)
    }
    totals = vbench_totals(vbench_scores)
    summary = {
        "suite": suite.name,
        "model": model_name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rewardkit_version": rewardkit.__version__,
        "seed": suite.seed,
        "videos": int(per_video["path"].nunique()) if len(per_video) else 0,
        "quality": totals.quality,
        "semantic": totals.semantic,
        "total": totals.total,
        "vbench_missing": list(totals.missing) if vbench_scores else [],
        "vbench_basis": _vbench_basis(suite, per_video, vbench_scores) if any(d.vbench for d in suite.dimensions) else {},
        "coverage": _coverage(suite, prompt_of or {}),
    }
    return EvalRun(per_video, dimensions, summary)


def _vbench_basis(suite: Suite, per_video: pd.DataFrame, scores: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """What Quality, Semantic and Total rest on: dimensions scored (of VBench's), the distinct videos
    scored ok in them, and the dimensions missing (a total is None whenever any is)."""
    vbench_names = {dimension.name for dimension in suite.dimensions if dimension.vbench}
    ok = per_video[(per_video["status"] == "ok") & per_video["dimension"].isin(vbench_names)] if len(per_video) else per_video
    basis = {}
    for group, names in (("quality", QUALITY), ("semantic", SEMANTIC), ("total", QUALITY + SEMANTIC)):
        present = [name for name in names if name in scores]
        videos = ok[ok["dimension"].isin(present)]["path"].nunique() if len(ok) else 0
        basis[group] = {"dimensions": len(present), "of": len(names), "videos": int(videos),
                        "missing": [name for name in names if name not in scores]}
    return basis


def _coverage(suite: Suite, prompt_of: Mapping[str, str | None]) -> dict[str, Any]:
    """How the videos cover the suite's prompt list (``videos_per_prompt`` each)."""
    counts: dict[str, int] = {}
    for prompt in prompt_of.values():
        if prompt is not None:
            counts[prompt] = counts.get(prompt, 0) + 1
    coverage: dict[str, Any] = {"without_prompt": sorted(path for path, prompt in prompt_of.items() if prompt is None)}
    if suite.prompts:
        listed = set(suite.prompts)
        coverage["short"] = {
            prompt: counts.get(prompt, 0) for prompt in suite.prompts if counts.get(prompt, 0) < suite.videos_per_prompt
        }
        coverage["not_in_prompt_list"] = sorted(prompt for prompt in counts if prompt not in listed)
    return coverage


def _write_run(run: EvalRun, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    run.videos.to_csv(run_dir / "videos.csv", index=False)
    run.dimensions.to_csv(run_dir / "dimensions.csv", index=False)
    temporary = run_dir / "summary.json.tmp"
    temporary.write_text(json.dumps(run.summary, indent=2, default=_json_default) + "\n", encoding="utf-8")
    temporary.replace(run_dir / "summary.json")
    run.path = run_dir


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def load_run(path: str | os.PathLike[str]) -> EvalRun:
    """Read a run directory written by ``evaluate``."""
    run_dir = Path(path)
    if not (run_dir / "summary.json").is_file():
        raise UserInputError(f"{str(run_dir)!r} is not an eval run directory (no summary.json); run `rewardkit eval` first")
    return EvalRun(
        pd.read_csv(run_dir / "videos.csv", keep_default_na=False, na_values=[""]),
        pd.read_csv(run_dir / "dimensions.csv", keep_default_na=False, na_values=[""]),
        json.loads((run_dir / "summary.json").read_text(encoding="utf-8")),
        run_dir,
    )

