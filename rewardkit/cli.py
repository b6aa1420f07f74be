"""The ``rewardkit`` command: ``list``, ``score``, ``download``, ``eval``, ``leaderboard``, ``regress`` and
``env``.

Exit codes: 0 success; 1 some rows failed (the rest were scored); 2 usage or setup error (bad arguments,
unknown reward or option, missing weights); 130 interrupted (finished rows are kept; rerun to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import rewardkit
from rewardkit.eval.cli import add_commands as add_eval_commands
from rewardkit.registry import WeightFile, get_reward_info, list_rewards, parse_reward_spec, validate_options
from rewardkit.scoring import WEIGHT_FREE_REWARDS, collect_media, iter_failures, score, summarize
from rewardkit.weights import (
    MissingWeightsError,
    WeightsMismatchError,
    cached_weight_path,
    is_offline,
    resolve_weight_file,
    sha256_of,
)

EXIT_OK, EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments or setup: printed without a traceback, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` behaves like Ctrl-C: rows so far are kept
    try:
        return args.run(args)
    except (UsageError, ValueError, MissingWeightsError, WeightsMismatchError, FileNotFoundError) as error:
        print(f"rewardkit {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: finished rows are saved; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardkit", description="Score, fine-tune and evaluate with reward models.")
    parser.add_argument("--version", action="version", version=f"rewardkit {rewardkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="show every registered reward")
    listing.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    listing.set_defaults(run=_run_list)

    scoring = commands.add_parser(
        "score",
        help="score images and videos with rewards",
        description="Score files and folders (videos, images, frame folders). One row per file and reward.",
    )
    scoring.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked recursively)")
    scoring.add_argument(
        "--reward", action="append", metavar="NAME[:key=value,...]",
        help="reward to score with (repeatable), e.g. hpsv2:version=v2.0; default: the weight-free metrics "
        f"({', '.join(WEIGHT_FREE_REWARDS)})",
    )
    scoring.add_argument("--prompts", metavar="FILE", help="CSV (path,prompt) or JSONL mapping files to prompts")
    scoring.add_argument(
        "--frames", default="segmental:4",
        help="frames an image reward scores in a video: segmental:S[:first|middle|random], uniform:N or all "
        "(default segmental:4, the first frame of each of 4 segments)",
    )
    scoring.add_argument("--weighting", default="mean", help="combine frame scores: mean or tar:LAMBDA[:normalized]")
    scoring.add_argument("--batch-size", type=int, default=8, help="frames per model batch (default 8)")
    scoring.add_argument("--device", default="cuda" if _cuda_available() else "cpu", help="default: cuda if available, else cpu")
    scoring.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    scoring.add_argument("--seed", type=int, default=0, help="seed for random frame sampling (default 0)")
    scoring.add_argument("--out", metavar="FILE", help="results table: .csv, .jsonl or .parquet (rerun to resume)")
    scoring.add_argument("--workers", type=int, default=None, help="decoding worker processes (default: cores - 1, at most 4)")
    scoring.add_argument(
        "--weights", action="append", default=[], metavar="[NAME=]PATH",
        help="local weights instead of the Hugging Face cache; NAME= picks the reward when several are scored",
    )
    scoring.add_argument("--no-progress", action="store_true", help="no progress bar")
    scoring.set_defaults(run=_run_score)

    download = commands.add_parser("download", help="fetch a reward's weights into the Hugging Face cache")
    download.add_argument("rewards", nargs="+", metavar="NAME[:key=value,...]")
    download.set_defaults(run=_run_download)

    add_eval_commands(commands)

    tuning = commands.add_parser(
        "finetune",
        help="fine-tune a text-to-video model against rewards (LoRA, reward backprop)",
        description="Run a fine-tuning recipe (finetune/*.toml). Exit 1 when a NaN/inf loss stopped the run.",
    )
    tuning.add_argument("recipe", nargs="?", metavar="RECIPE.toml", help="recipe; optional with --resume (the run's config.toml is used)")
    tuning.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE",
                        help="override a recipe value (repeatable), e.g. --set train.max_steps=100")
    tuning.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    tuning.set_defaults(run=_run_finetune)

    pairing = commands.add_parser("pairs", help="preference pairs (JSONL, for dpo / gran_dpo) from a `rewardkit score` table")
    pairing.add_argument("results", metavar="RESULTS", help="a results table of `rewardkit score --out` with several videos per prompt")
    pairing.add_argument("--out", required=True, metavar="PAIRS.jsonl", help="where to write the pairs")
    pairing.add_argument("--reward", metavar="NAME", help="the reward to rank by (needed when the table has several)")
    pairing.add_argument("--margin", type=float, default=0.0, metavar="M", help="score differences of at most M are ties and left out (default 0)")
    pairing.add_argument("--rule", choices=("best-worst", "all"), default="best-worst", help="best vs worst video per prompt, or every two videos")
    pairing.set_defaults(run=_run_pairs)

    env = commands.add_parser("env", help="versions, devices and caches, for bug reports")
    env.set_defaults(run=_run_env)
    return parser


def _run_pairs(args: argparse.Namespace) -> int:
    from rewardkit.finetune.pairs import build_pairs, read_results, write_pairs

    pairs, ties = build_pairs(read_results(args.results), args.reward, args.margin, args.rule)
    out = write_pairs(pairs, args.out)
    print(f"pairs: {out} ({len(pairs)} pairs, {ties} ties left out)")
    return EXIT_OK


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _run_list(args: argparse.Namespace) -> int:
    rows = []
    for info in list_rewards():
        files = info.weight_files()
        rows.append({
            "name": info.name,
            "modality": info.modality,
            "prompt": "yes" if info.needs_prompt else "no",
            "differentiable": "yes" if info.differentiable else "no",
            "weights": ", ".join(w.label for w in files) or "none (weight-free)",
            "size": ", ".join(w.size_text for w in files if w.size) or "-",
            "cached": ("yes" if all(_is_cached(w) for w in files) else "no") if files else "-",
            "licence": ", ".join(sorted({w.license for w in files})) or "-",
        })
    table = pd.DataFrame(rows)
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "markdown":
        print(_markdown(table))
    else:
        print(table.to_string(index=False))
    return EXIT_OK


def _is_cached(weight: WeightFile) -> bool:
    return cached_weight_path(weight) is not None


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _weights_by_reward(values: Sequence[str], specs: Sequence[str]) -> dict[str, str]:
    names = [parse_reward_spec(spec)[0] for spec in specs]
    with_weights = [name for name in names if get_reward_info(name).weight_files()]
    mapping: dict[str, str] = {}
    for value in values:
        name, separator, path = value.partition("=")
        if separator and name in names:
            mapping[name] = path
        elif len(with_weights) == 1:
            mapping[with_weights[0]] = value
        else:
            raise UsageError(
                f"--weights {value!r}: with {len(with_weights)} rewards that need weights, write --weights NAME=PATH"
            )
    return mapping


def _run_score(args: argparse.Namespace) -> int:
    specs = args.reward or list(WEIGHT_FREE_REWARDS)
    for spec in specs:  # fail fast on names and options, before any file is touched or model is loaded
        name, options = parse_reward_spec(spec)
        validate_options(get_reward_info(name), options)
    weights = _weights_by_reward(args.weights, specs)
    media, skipped = collect_media(args.paths)
    if not media:
        raise UsageError(f"no images or videos found in {', '.join(args.paths)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = score(
            args.paths,
            specs,
            prompts=args.prompts,
            frames=args.frames,
            weighting=args.weighting,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            seed=args.seed,
            out=args.out,
            workers=args.workers,
            weights=weights,
            progress=not args.no_progress,
        )
    truncated = sorted({str(warning.message) for warning in caught if "truncated" in str(warning.message)})
    if truncated:
        more = f" ({len(truncated) - 1} more prompts alike; see the warning column)" if len(truncated) > 1 else ""
        print(f"warning: {truncated[0]}{more}", file=sys.stderr)
    _print_report(results, skipped, args.out)
    return EXIT_FAILED_ROWS if (results["status"] == "failed").any() else EXIT_OK


def _print_report(results: pd.DataFrame, skipped: Sequence[str], out: str | None) -> None:
    summary = summarize(results)
    if not summary.empty:
        summary["options"] = summary["options"].map(_short_options)
        print(summary.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    failures = list(iter_failures(results))
    for path, reward, error in failures[:10]:
        print(f"failed: {path} [{reward}]: {error}", file=sys.stderr)
    if len(failures) > 10:
        print(f"... and {len(failures) - 10} more failures (see the status and error columns)", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} non-media file(s), e.g. {skipped[0]}", file=sys.stderr)
    if out:
        print(f"results: {out} ({len(results)} rows)")


def _short_options(options: str) -> str:
    values = json.loads(options)
    return ",".join(f"{key}={value}" for key, value in values.items() if key not in ("architecture", "processor", "clip_weights", "tokenizer")) or "-"


def _run_download(args: argparse.Namespace) -> int:
    if is_offline():
        raise UsageError("HF_HUB_OFFLINE is set; unset it to download (`rewardkit download` needs the network)")
    for spec in args.rewards:
        name, options = parse_reward_spec(spec)
        info = get_reward_info(name)
        validate_options(info, options)
        files = info.weight_files(options)
        if not files:
            print(f"{name}: weight-free, nothing to download")
        for weight in files:
            path = resolve_weight_file(weight, reward=name)
            print(f"{name}: {weight.source} -> {path} ({os.path.getsize(path):,} bytes, sha256 {sha256_of(path)})")
    return EXIT_OK


def _run_finetune(args: argparse.Namespace) -> int:
    from rewardkit.finetune import NonFiniteLossError, finetune

    if args.recipe is None and args.resume is None:
        raise UsageError("give a recipe (e.g. finetune/smoke-tiny.toml) or --resume RUN_DIR")
    try:
        run_dir = finetune(args.recipe, overrides=args.overrides, resume=args.resume)
    except NonFiniteLossError as error:
        print(f"rewardkit finetune: {error}", file=sys.stderr)
        return EXIT_FAILED_ROWS
    print(f"run: {run_dir} (LoRA: {run_dir}/lora, metrics: {run_dir}/metrics.csv)")
    return EXIT_OK


def _run_env(args: argparse.Namespace) -> int:
    import importlib.metadata as metadata

    import torch

    from rewardkit.video import io

    lines = {"rewardkit": rewardkit.__version__, "python": sys.version.split()[0]}
    for package in ("torch", "torchvision", "open_clip_torch", "transformers", "huggingface_hub", "decord", "av"):
        try:
            lines[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            lines[package] = "not installed"
    lines["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    lines["video backend"] = "decord" if io._decord() else "PyAV"
    from huggingface_hub import constants

    lines["HF cache"] = str(Path(constants.HF_HUB_CACHE))
    lines["offline"] = str(is_offline())
    for key, value in lines.items():
        print(f"{key:>16}: {value}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
