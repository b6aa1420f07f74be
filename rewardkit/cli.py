"""The ``rewardkit`` command: ``list``, ``score``, ``download``, ``eval``, ``leaderboard``, ``regress``,
``finetune``, ``sample``, ``pairs`` and ``env``.

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
from typing import TYPE_CHECKING

import rewardkit
from rewardkit.errors import UserInputError
from rewardkit.eval.cli import HelpFormatter
from rewardkit.eval.cli import add_commands as add_eval_commands

if TYPE_CHECKING:
    import pandas as pd

    from rewardkit.registry import WeightFile

# Building the parser and `--help` import neither torch nor any reward module: everything heavy is
# imported inside the command that needs it.

EXIT_OK, EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = """exit codes:
  0    every row scored (or skipped as not applicable)
  1    some rows failed; the others are scored (see the status and error columns)
  2    usage or setup error: bad arguments, unknown reward or option, missing weights or package,
       a device this machine does not have
  130  interrupted (Ctrl-C or kill): finished rows are kept; rerun the same command to resume"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` behaves like Ctrl-C: rows so far are kept
    try:
        return args.run(args)
    except (UserInputError, FileNotFoundError) as error:  # missing weights are a FileNotFoundError
        advice = getattr(error, "advice", None)  # MissingWeightsError: the remedy in this command's syntax
        print(f"rewardkit {args.command}: error: {advice(args.command) if advice else error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: finished rows are saved; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    """The ``rewardkit`` argument parser (cheap: no torch, no CUDA probe, no reward module imported)."""
    parser = argparse.ArgumentParser(
        prog="rewardkit",
        description="Score, fine-tune and evaluate with reward models.",
        epilog="examples:\n  rewardkit score examples/videos\n  rewardkit list\n  rewardkit COMMAND --help",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rewardkit {rewardkit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser(
        "list", help="show every registered reward",
        description="Every registered reward: modality, whether it needs a prompt, whether it is differentiable, "
        "the weight files it needs with their sizes and licences, and whether they are cached here.",
        epilog="examples:\n  rewardkit list\n  rewardkit list --format markdown > rewards.md",
        formatter_class=HelpFormatter,
    )
    listing.add_argument("--format", choices=("table", "markdown", "csv"), default="table",
                         help="table (default), csv, or markdown (the README's reward table, without the cache column)")
    listing.set_defaults(run=_run_list)

    scoring = commands.add_parser(
        "score",
        help="score images and videos with rewards",
        description="Score files and folders (videos, images, frame folders). One row per file and reward. "
        "Without --out the per-file scores are printed; with it they go to the results file (rerun to resume) "
        "and only the summary is printed.",
        epilog="examples:\n  rewardkit score examples/videos\n"
        "  rewardkit score videos/ --reward hpsv2 --prompts prompts.csv --out results.csv\n\n" + EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    scoring.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (walked recursively)")
    scoring.add_argument(
        "--manifest", metavar="FILE",
        help="a .txt (one path a line) or .csv ('path' column) list of files to score as listed, not walked: "
        "for large jobs, where every process would otherwise walk the folders",
    )
    scoring.add_argument(
        "--reward", action="append", metavar="NAME[:key=value,...]",
        help="reward to score with (repeatable), e.g. hpsv2:version=v2.0; default: every weight-free metric "
        "whose packages are installed (temporal_flickering, dynamic_degree_flow, motion_smoothness_flow)",
    )
    scoring.add_argument("--prompts", metavar="FILE", help="CSV (path,prompt) or JSONL mapping files to prompts")
    scoring.add_argument(
        "--frames", default="segmental:4",
        help="frames an image reward scores in a video: segmental:S[:first|middle|random], uniform:N or all "
        "(default segmental:4, the first frame of each of 4 segments)",
    )
    scoring.add_argument("--weighting", default="mean", help="combine frame scores: mean or tar:LAMBDA[:normalized]")
    scoring.add_argument(
        "--batch-size", type=_batch_size, default=8,
        help="frames per model batch (default 8), or auto: the largest that fits (GPU: halved on out-of-memory; "
        "CPU: sized by a memory probe on the first frames)",
    )
    scoring.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    scoring.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="model dtype (default fp32; "
                         "the README lists each reward's score difference)")
    scoring.add_argument("--compile", action="store_true", help="torch.compile each reward's networks (a warm-up on the "
                         "first batch, left out of the rows' seconds; pays off on long GPU runs)")
    scoring.add_argument("--seed", type=int, default=0, help="seed for random frame sampling, 0 or more (default 0)")
    scoring.add_argument("--out", metavar="FILE", help="results table: .csv, .jsonl or .parquet (rerun to resume)")
    scoring.add_argument("--workers", type=int, default=None, help="decoding worker processes (default: one per 16 files, at most cores - 1 and 4; "
                         "0: one child process, one file at a time; a decoder crash is one failed row, except with --decode-device cuda)")
    scoring.add_argument("--decode-device", default="cpu", help="where video files are decoded: cpu (default) or cuda[:N] (torchcodec on the GPU; clear error where unsupported)")
    scoring.add_argument(
        "--weights", action="append", default=[], metavar="[NAME=]PATH",
        help="local weights instead of the Hugging Face cache; NAME= picks the reward when several are scored, "
        "NAME.ROLE= one file of a reward made of several (e.g. aesthetic.backbone=PATH)",
    )
    scoring.add_argument("--no-progress", action="store_true", help="no progress bar")
    scoring.set_defaults(run=_run_score)

    download = commands.add_parser(
        "download", help="fetch a reward's weights into the Hugging Face cache",
        description="Download the weight files of rewards (for their options, e.g. hpsv2:version=v2.0) into "
        "the Hugging Face cache (or the rewardkit cache for files hosted elsewhere) and print each file's "
        "path and sha256. Needs the network; run it on a connected machine and copy the cache.",
        epilog="examples:\n  rewardkit download hpsv2\n  rewardkit download hpsv2:version=v2.0 pickscore",
        formatter_class=HelpFormatter,
    )
    download.add_argument(
        "rewards", nargs="+", metavar="NAME[:key=value,...]",
        help="rewards whose weights to fetch, with the options that choose the files (see `rewardkit list`)",
    )
    download.set_defaults(run=_run_download)

    add_eval_commands(commands)

    tuning = commands.add_parser(
        "finetune",
        help="fine-tune a text-to-video model against rewards (LoRA, reward backprop)",
        description="Run a fine-tuning recipe (finetune/*.toml). Exit 1 when a NaN/inf loss stopped the run.",
        epilog="examples:\n  rewardkit finetune finetune/smoke-tiny.toml --set train.output_dir=runs/smoke\n"
        "  rewardkit finetune --resume runs/smoke --set train.max_steps=8",
        formatter_class=HelpFormatter,
    )
    tuning.add_argument("recipe", nargs="?", metavar="RECIPE.toml", help="recipe; optional with --resume (the run's config.toml is used)")
    tuning.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE",
                        help="override a recipe value (repeatable), e.g. --set train.max_steps=100")
    tuning.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    tuning.set_defaults(run=_run_finetune)

    sampling = commands.add_parser(
        "sample",
        help="sample videos of a text-to-video model for a prompt list (VBench names; optional rewards, guidance)",
        description="Sample --num-per-prompt videos per prompt into --out as {prompt}-{i}.mp4 (the names `rewardkit eval` "
        "reads). Existing videos are kept (rerun to resume); under `accelerate launch` each process samples a share. "
        "With --reward the videos are scored into OUT/results.csv (the `rewardkit score` table).",
        epilog="examples:\n  rewardkit sample prompts.txt --model finetune/smoke-tiny.toml --num-per-prompt 2 --out runs/samples\n"
        "  rewardkit sample eval/quick.toml --model Wan-AI/Wan2.1-T2V-1.3B-Diffusers --family wan --num-frames 33 --out videos\n\n" + EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    sampling.add_argument("prompts", metavar="PROMPTS", help="a text file (one prompt per line), a CSV with a prompt column, or an eval suite (.toml)")
    sampling.add_argument("--model", required=True, metavar="PATH_OR_RECIPE",
                          help="a recipe (.toml, e.g. RUN/config.toml: its model and sampler settings) or a model folder / Hub id / testing:NAME")
    sampling.add_argument("--family", help="model family of a model path: unet3d (default), animatediff or wan")
    sampling.add_argument("--lora", metavar="RUN/lora", help="a LoRA written by `rewardkit finetune` (merged into the model)")
    sampling.add_argument("--num-per-prompt", type=int, default=None, metavar="K", help="videos per prompt (default 1, or the suite's videos_per_prompt)")
    sampling.add_argument("--steps", type=int, metavar="D", help="sampling steps (default: the recipe's, else 20)")
    sampling.add_argument("--cfg", type=float, metavar="S", help="classifier-free guidance scale (default: the recipe's, else 5; 1 = off)")
    sampling.add_argument("--negative-prompt", help="negative prompt of classifier-free guidance (default: the recipe's, else empty)")
    sampling.add_argument("--seed", type=int, default=None, help="video i of a prompt depends only on (prompt, i, seed) (default 0, or the suite's seed)")
    sampling.add_argument("--num-frames", type=int, help="frames per video (default: the recipe's, else 16)")
    sampling.add_argument("--height", type=int, help="height in pixels (default: the recipe's, else 256)")
    sampling.add_argument("--width", type=int, help="width in pixels (default: the recipe's, else 256)")
    sampling.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), help="model dtype (default: the recipe's, else fp32)")
    sampling.add_argument("--batch-size", type=int, default=1, help="videos sampled together (default 1)")
    sampling.add_argument("--fps", type=float, default=8.0, help="frame rate written into the mp4s (default 8)")
    sampling.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    sampling.add_argument("--reward", action="append", default=[], metavar="NAME[:key=value,...]",
                          help="score the videos with this reward into OUT/results.csv (repeatable)")
    sampling.add_argument("--weights", action="append", default=[], metavar="[NAME=]PATH", help="local weights of the --reward rewards, as in `rewardkit score`")
    sampling.add_argument("--guidance", metavar="REWARD[:key=value,...]", help="a differentiable reward guiding the sampler (see README: reward guidance)")
    sampling.add_argument("--guidance-scale", type=float, default=None, metavar="W",
                          help="RMS change of the clean latent per guided step (default 0.1)")
    sampling.add_argument("--guidance-steps", default=None, help="guided steps: all (default), first:N or last:N")
    sampling.add_argument("--guidance-frames", default="segmental:4:random",
                          help="frames an image guidance reward sees per step (default segmental:4:random)")
    sampling.add_argument("--out", required=True, metavar="DIR", help="folder of the videos (and results.csv)")
    sampling.add_argument("--no-progress", action="store_true", help="no progress bar")
    sampling.set_defaults(run=_run_sample)

    pairing = commands.add_parser(
        "pairs", help="preference pairs (JSONL, for dpo / gran_dpo) from a `rewardkit score` table",
        description="Pair the videos of each prompt in a `rewardkit score` table by one reward: best vs worst, or every two.",
        epilog="example:\n  rewardkit pairs results.csv --out pairs.jsonl --reward hpsv2 --margin 0.005",
        formatter_class=HelpFormatter,
    )
    pairing.add_argument("results", metavar="RESULTS", help="a results table of `rewardkit score --out` with several videos per prompt")
    pairing.add_argument("--out", required=True, metavar="PAIRS.jsonl", help="where to write the pairs")
    pairing.add_argument("--reward", metavar="NAME", help="the reward to rank by (needed when the table has several)")
    pairing.add_argument("--margin", type=float, default=0.0, metavar="M", help="score differences of at most M are ties and left out (default 0)")
    pairing.add_argument("--rule", choices=("best-worst", "all"), default="best-worst", help="best vs worst video per prompt, or every two videos")
    pairing.set_defaults(run=_run_pairs)

    env = commands.add_parser(
        "env", help="versions, devices and caches, for bug reports",
        description="Print the versions of rewardkit and its main packages, the GPU, the video backend, the "
        "cache folders and whether the Hub is offline: paste it into bug reports.",
        epilog="example:\n  rewardkit env",
        formatter_class=HelpFormatter,
    )
    env.set_defaults(run=_run_env)
    return parser


def _run_sample(args: argparse.Namespace) -> int:
    from rewardkit.finetune.sample import sample_videos

    prompts, per_prompt, seed = args.prompts, 1, 0
    if args.prompts.endswith(".toml"):  # an eval suite: its prompt list, videos per prompt and seed
        from rewardkit.eval.suite import load_suite

        suite = load_suite(args.prompts)
        if not suite.prompts:
            raise UserInputError(f"suite {args.prompts!r} has no prompt list (its 'prompts' key); give a prompt file")
        prompts, per_prompt, seed = list(suite.prompts), suite.videos_per_prompt, suite.seed
    run = sample_videos(
        prompts, args.model, args.out, family=args.family, lora=args.lora,
        num_per_prompt=args.num_per_prompt if args.num_per_prompt is not None else per_prompt, steps=args.steps, cfg=args.cfg,
        negative_prompt=args.negative_prompt, seed=args.seed if args.seed is not None else seed, batch_size=args.batch_size,
        num_frames=args.num_frames, height=args.height, width=args.width, dtype=args.dtype, device=args.device, fps=args.fps,
        rewards=args.reward, weights=_weights_by_reward(args.weights, args.reward) if args.weights else None,
        guidance=args.guidance, guidance_scale=args.guidance_scale, guidance_steps=args.guidance_steps,
        guidance_frames=args.guidance_frames, progress=not args.no_progress,
    )
    print(f"sample: {args.out} ({len(run.videos)} videos, {len(run.written)} written now, {len(run.videos) - len(run.written)} kept or by other processes)")
    if args.guidance:
        print(f"guidance: {run.guided_backward_passes} reward backward passes, {run.guided_decoded_frames} frames decoded with a graph")
    if run.results is not None:
        _print_report(run.results, [], str(Path(args.out) / "results.csv"))
        return EXIT_FAILED_ROWS if (run.results["status"] == "failed").any() else EXIT_OK
    return EXIT_OK


def _run_pairs(args: argparse.Namespace) -> int:
    from rewardkit.finetune.pairs import build_pairs, read_results, write_pairs

    pairs, ties = build_pairs(read_results(args.results), args.reward, args.margin, args.rule)
    out = write_pairs(pairs, args.out)
    print(f"pairs: {out} ({len(pairs)} pairs, {ties} ties left out)")
    return EXIT_OK


def _batch_size(value: str) -> int | str:
    """``--batch-size``: a whole number of frames, at least 1, or ``auto``."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames, at least 1, or auto; got {value!r}")
    return int(value)


def default_device() -> str:
    """cuda when torch finds a GPU, else cpu (probed only when a command runs, never for --help)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_rewards() -> tuple[list[str], list[str]]:
    """The weight-free metrics ``score`` uses without --reward: (usable here, left out with the reason)."""
    from rewardkit.lazy import check_dependencies
    from rewardkit.scoring import WEIGHT_FREE_REWARDS

    usable, left_out = [], []
    for name in WEIGHT_FREE_REWARDS:
        try:
            check_dependencies(vars(sys.modules[_reward_module(name)]))
        except UserInputError as error:
            left_out.append(f"{name} ({error})")
        else:
            usable.append(name)
    return usable, left_out


def _reward_module(name: str) -> str:
    from rewardkit.registry import get_reward_info

    return get_reward_info(name).factory.__module__


def _run_list(args: argparse.Namespace) -> int:
    from rewardkit.registry import list_rewards

    rows = []
    for info in list_rewards():
        files = info.weight_files()
        rows.append({
            "name": info.name,
            "modality": info.modality,
            "prompt": "yes" if info.needs_prompt else "no",
            "differentiable": "yes" if info.differentiable else "no",
            "weights": ", ".join(w.label for w in files) or "none (weight-free)",
            "size": ", ".join(w.size_text for w in files) or "-",
            "cached": _cached_text(files),
            "licence": ", ".join(sorted({w.license for w in files})) or "-",
        })
    columns = list(rows[0])
    if args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif args.format == "markdown":  # the README's reward table: the same on every machine, so no cache column
        shown = [column for column in columns if column != "cached"]
        print(_markdown(shown, [[row[column] for column in shown] for row in rows]))
    else:
        widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns}
        for values in ([*columns], *([row[column] for column in columns] for row in rows)):
            print("  ".join(value.ljust(widths[column]) for column, value in zip(columns, values, strict=True)).rstrip())
    return EXIT_OK


def _cached_text(files: Sequence[WeightFile]) -> str:
    from rewardkit.weights import cached_weight_path

    if not files:
        return "-"
    if not all(weight.downloadable for weight in files):
        return "by path"  # rewardkit cannot fetch it; `rewardkit download NAME` says where to get it
    return "yes" if all(cached_weight_path(weight) is not None for weight in files) else "no"


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def _weights_by_reward(values: Sequence[str], specs: Sequence[str]) -> dict[str, str]:
    from rewardkit.registry import get_reward_info, parse_reward_spec

    names = [parse_reward_spec(spec)[0] for spec in specs]
    with_weights = [name for name in names if get_reward_info(name).weight_files()]
    mapping: dict[str, str] = {}
    for value in values:
        key, separator, path = value.partition("=")
        if separator and key.partition(".")[0] in names:  # NAME=PATH, or NAME.ROLE=PATH for one file of several
            mapping[key] = path
        elif len(with_weights) == 1:
            mapping[with_weights[0]] = value
        else:
            raise UserInputError(
                f"--weights {value!r}: with {len(with_weights)} rewards that need weights, write --weights NAME=PATH"
            )
    return mapping


def _run_score(args: argparse.Namespace) -> int:
    from rewardkit.distributed import processes
    from rewardkit.registry import get_reward_info, parse_device, parse_reward_spec, validate_options
    from rewardkit.scoring import collect_media, score
    from rewardkit.scoring.inputs import InputWarning
    from rewardkit.scoring.results import escape_text

    device = str(parse_device(args.device or default_device()))  # a missing GPU is one line, before any work
    specs = args.reward
    if not specs:
        specs, left_out = default_rewards()
        for reason in left_out:
            print(f"note: left out {reason}", file=sys.stderr)
    for spec in specs:  # fail fast on names and options, before any file is touched or model is loaded
        name, options = parse_reward_spec(spec)
        validate_options(get_reward_info(name), options)
    weights = _weights_by_reward(args.weights, specs)
    if args.seed < 0:
        raise UserInputError(f"--seed must be 0 or more, got {args.seed}")
    if not args.paths and args.manifest is None:
        raise UserInputError("give the files or folders to score, or --manifest FILE")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        media, skipped = collect_media(args.paths)
        if not media and args.manifest is None:
            raise UserInputError(f"no images or videos found in {', '.join(args.paths)}")
        results = score(
            args.paths,
            specs,
            prompts=args.prompts,
            frames=args.frames,
            weighting=args.weighting,
            batch_size=args.batch_size,
            device=device,
            dtype=args.dtype,
            compile_models=args.compile,
            seed=args.seed,
            out=args.out,
            workers=args.workers,
            weights=weights,
            progress=not args.no_progress,
            manifest=args.manifest,
            decode_device=args.decode_device,
        )
    code = EXIT_FAILED_ROWS if (results["status"] == "failed").any() else EXIT_OK
    if not processes().is_main:  # every process holds every row; the main process reports them
        return code
    truncated = sorted({str(warning.message) for warning in caught if "truncated" in str(warning.message)})
    if truncated:
        more = f" ({len(truncated) - 1} more prompts alike; see the warning column)" if len(truncated) > 1 else ""
        print(f"warning: {truncated[0]}{more}", file=sys.stderr)
    for message in dict.fromkeys(str(warning.message) for warning in caught if issubclass(warning.category, InputWarning)):
        print(f"warning: {escape_text(message)}", file=sys.stderr)
    _print_report(results, skipped, args.out)
    return code


def _print_report(results: pd.DataFrame, skipped: Sequence[str], out: str | None) -> None:
    from rewardkit.scoring import iter_failures, summarize
    from rewardkit.scoring.results import escape_text

    if out is None and not results.empty:
        print(_per_file_table(results))
        print()
    summary = summarize(results)
    if not summary.empty:
        summary["options"] = summary["options"].map(_short_options)
        print(summary.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    failures = list(iter_failures(results))
    for path, reward, error in failures[:10]:
        print(f"failed: {path} [{reward}]: {error}", file=sys.stderr)  # already escaped in the table
    if len(failures) > 10:
        print(f"... and {len(failures) - 10} more failures (see the status and error columns)", file=sys.stderr)
    folders = [path for path in skipped if os.path.isdir(path)]
    files = [path for path in skipped if path not in folders]
    if files:
        print(f"skipped {len(files)} non-media file(s), e.g. {escape_text(files[0])}", file=sys.stderr)
    if folders:
        print(f"could not read {len(folders)} folder(s), their files are not scored: {escape_text(folders[0])}", file=sys.stderr)
    if out:
        print(f"results: {out} ({len(results)} rows)")


def _per_file_table(results: pd.DataFrame) -> str:
    """One line per file, one column per reward: the score, or the row's status when it has none."""
    pairs = list(dict.fromkeys(zip(results["reward"], results["options"], strict=True)))
    names = [reward for reward, _ in pairs]
    labels = {
        (reward, options): reward if names.count(reward) == 1 else f"{reward}:{_short_options(options)}"
        for reward, options in pairs
    }
    cells = results.assign(
        column=[labels[(reward, options)] for reward, options in zip(results["reward"], results["options"], strict=True)],
        value=[f"{score:.4f}" if status == "ok" else status for score, status in zip(results["score"], results["status"], strict=True)],
    )
    table = cells.pivot_table(index="path", columns="column", values="value", aggfunc="first", sort=False)
    return table[list(dict.fromkeys(cells["column"]))].fillna("-").to_string(index_names=False)


def _short_options(options: str) -> str:
    values = json.loads(options)
    return ",".join(f"{key}={value}" for key, value in values.items() if key != "architecture") or "-"


def _run_download(args: argparse.Namespace) -> int:
    from rewardkit.registry import get_reward_info, parse_reward_spec, validate_options
    from rewardkit.weights import MissingWeightsError, fetch_weight_file, is_offline, sha256_of

    if is_offline():
        raise UserInputError("HF_HUB_OFFLINE is set; unset it to download (`rewardkit download` needs the network)")
    for spec in args.rewards:
        name, options = parse_reward_spec(spec)
        info = get_reward_info(name)
        validate_options(info, options)
        files = info.weight_roles(options)
        if not files:
            print(f"{name}: weight-free, nothing to download")
        for role, weight in files.items():
            if not weight.downloadable:
                flag = name if role == next(iter(files)) else f"{name}.{role}"
                print(f"{name}: {weight.filename} ({weight.size_text}) cannot be downloaded by rewardkit: it is "
                      f"{weight.manual}. Pass it with `--weights {flag}=PATH` (or weights=PATH in Python)")
                continue
            try:
                path = fetch_weight_file(weight, reward=name)
            except MissingWeightsError as error:
                raise MissingWeightsError(f"{name}: {weight.filename} from {weight.source}: {error}") from error
            print(f"{name}: {weight.source} -> {path} ({os.path.getsize(path):,} bytes, sha256 {sha256_of(path)})")
    return EXIT_OK


def _run_finetune(args: argparse.Namespace) -> int:
    from rewardkit.finetune import NonFiniteLossError, RewardHackingStop, finetune

    if args.recipe is None and args.resume is None:
        raise UserInputError("give a recipe (e.g. finetune/smoke-tiny.toml) or --resume RUN_DIR")
    try:
        run_dir = finetune(args.recipe, overrides=args.overrides, resume=args.resume)
    except (NonFiniteLossError, RewardHackingStop) as error:
        print(f"rewardkit finetune: {error}", file=sys.stderr)
        return EXIT_FAILED_ROWS
    print(f"run: {run_dir} (LoRA: {run_dir}/lora, metrics: {run_dir}/metrics.csv)")
    return EXIT_OK


def _run_env(args: argparse.Namespace) -> int:
    import importlib.metadata as metadata

    import torch

    from rewardkit.video import io
    from rewardkit.weights import is_offline

    lines = {"rewardkit": rewardkit.__version__, "python": sys.version.split()[0]}
    for package in ("torch", "torchvision", "open_clip_torch", "transformers", "huggingface_hub", "torchcodec", "av"):
        try:
            lines[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            lines[package] = "not installed"
    lines["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    lines["video backend"] = io.video_backend()
    from huggingface_hub import constants

    lines["HF cache"] = str(Path(constants.HF_HUB_CACHE))
    lines["offline"] = str(is_offline())
    for key, value in lines.items():
        print(f"{key:>16}: {value}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
