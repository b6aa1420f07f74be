"""The ``eval``, ``leaderboard`` and ``regress`` subcommands of ``rewardkit``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rewardkit.errors import UserInputError

__all__ = ["add_commands", "HelpFormatter"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that text with line breaks (the examples) is printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``eval``, ``leaderboard`` and ``regress`` on the main parser's subcommands."""
    evaluation = commands.add_parser(
        "eval", help="score a folder of videos on a suite's dimensions (VBench-style totals)",
        description="Score videos on every dimension of a suite (a TOML file such as eval/quick.toml); writes "
        "videos.csv, dimensions.csv and summary.json to the run directory. Rerun to resume.",
        epilog="examples:\n"
        "  rewardkit eval eval/quick.toml --videos examples/videos --dimensions temporal_flickering --out runs/examples\n"
        "  rewardkit eval eval/vbench-quality.toml --videos samples/ --weights dynamic_degree=raft-things.pth",
        formatter_class=HelpFormatter,
    )
    evaluation.add_argument("suite", metavar="SUITE", help="suite TOML file, e.g. eval/quick.toml")
    evaluation.add_argument("--videos", action="append", required=True, metavar="DIR", help="videos (repeatable)")
    evaluation.add_argument("--model-name", help="the model's name in the run and on leaderboards (default: the folder's name)")
    evaluation.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/SUITE-MODEL)")
    evaluation.add_argument("--prompts", metavar="FILE", help="CSV (path,prompt) or JSONL mapping videos to prompts")
    evaluation.add_argument("--dimensions", metavar="A,B", help="only these dimensions of the suite")
    evaluation.add_argument("--vbench-info", metavar="FILE", help="VBench_full_info.json (or a file in its format) instead of the suite's vbench_info download")
    evaluation.add_argument("--weights", action="append", default=[], metavar="NAME=PATH", help="local weights for a reward")
    evaluation.add_argument("--set", action="append", default=[], metavar="DIM.KEY=VALUE", help="extra reward option for a dimension")
    evaluation.add_argument("--device", default=None, help="default: this process's GPU if any, else cpu")
    evaluation.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="model dtype (default fp32)")
    evaluation.add_argument("--batch-size", type=int, default=8, help="frames per model batch (default 8)")
    evaluation.add_argument("--workers", type=int, default=None, help="decoding worker processes")
    evaluation.add_argument("--decode-device", default="cpu", help="where video files are decoded: cpu (default) or cuda[:N] (torchcodec on the GPU; clear error where unsupported)")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluation.set_defaults(run=_run_eval)

    board = commands.add_parser(
        "leaderboard", help="add eval runs to leaderboards and render them",
        description="Leaderboards are CSV files, one per suite, one row per model.",
        epilog="examples:\n  rewardkit leaderboard add runs/examples\n  rewardkit leaderboard render leaderboards/vbench.csv",
        formatter_class=HelpFormatter,
    )
    actions = board.add_subparsers(dest="action", metavar="ACTION", required=True)
    adding = actions.add_parser(
        "add", help="append a run's model to leaderboards/SUITE.csv",
        description="Add the model of each eval run to the leaderboard of the run's suite (DIR/SUITE.csv, "
        "created if needed). A model already on the board has its row replaced in place; the command says "
        "whether each run was added, updated or already present.",
        epilog="examples:\n  rewardkit leaderboard add runs/examples\n"
        "  rewardkit leaderboard add runs/quick-mymodel --model my-model --dir boards",
        formatter_class=HelpFormatter,
    )
    adding.add_argument("runs", nargs="+", metavar="RUN_DIR", help="eval run directories (from `rewardkit eval --out`)")
    adding.add_argument("--dir", default="leaderboards", help="leaderboard folder (default leaderboards)")
    adding.add_argument("--model", help="name on the board (default: the run's model name)")
    adding.set_defaults(run=_run_leaderboard_add)
    rendering = actions.add_parser(
        "render", help="write Markdown, PNG and HTML for leaderboards",
        description="Rank each leaderboard by VBench Total (or the mean of its dimensions) and write BOARD.md, "
        "BOARD.png and a self-contained BOARD.html next to it (or into --out).",
        epilog="examples:\n  rewardkit leaderboard render leaderboards/vbench.csv\n  rewardkit leaderboard render --out site/",
        formatter_class=HelpFormatter,
    )
    rendering.add_argument("boards", nargs="*", metavar="BOARD.csv", help="default: every CSV in --dir")
    rendering.add_argument("--dir", default="leaderboards", help="leaderboard folder (default leaderboards)")
    rendering.add_argument("--out", metavar="DIR", help="write here instead of next to each CSV")
    rendering.set_defaults(run=_run_leaderboard_render)

    regress = commands.add_parser(
        "regress", help="fail when scores drop against a baseline (for CI)",
        description="Compare per-metric means (and per-file scores with a paired t-test) of RESULTS against a "
        "baseline; exit 1 with a Markdown report on regression.",
        epilog="examples:\n"
        "  rewardkit regress runs/examples --baseline leaderboards/baselines/examples.csv --metrics temporal_flickering\n"
        "  rewardkit regress results.csv --baseline baseline.csv --update",
        formatter_class=HelpFormatter,
    )
    regress.add_argument("results", metavar="RESULTS", help="eval run directory or rewardkit score results file")
    regress.add_argument("--baseline", required=True, metavar="FILE", help="baseline CSV (write one with --update)")
    regress.add_argument("--tol", action="append", default=[], metavar="METRIC=ABS",
                         help="absolute tolerance for a metric (overrides the baseline's and the suite's)")
    regress.add_argument("--default-tol", type=float, default=None,
                         help="tolerance of metrics without one in --tol or the baseline (default: 0.1%% of the metric's "
                              "score range, e.g. 1e-3 on 0-1 and 0.1 on 0-100; 1e-3 for unbounded metrics)")
    regress.add_argument("--inconclusive", choices=("fail", "pass"), default="fail",
                         help="what a metric whose drop the data can neither rule in nor out does (default fail)")
    regress.add_argument("--metrics", metavar="A,B", help="compare only these metrics of the baseline")
    regress.add_argument("--alpha", type=float, default=0.05, help="1 - confidence of the bounds (default 0.05: 95%% one-sided bounds)")
    regress.add_argument("--report", metavar="FILE", help="also write the Markdown report here")
    regress.add_argument("--update", action="store_true", help="write RESULTS as the new baseline instead of comparing")
    regress.set_defaults(run=_run_regress)


def _key_values(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UserInputError(f"cannot read {what} {item!r}; write KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def _run_eval(args: argparse.Namespace) -> int:
    from rewardkit.eval.harness import evaluate
    from rewardkit.eval.suite import load_suite
    from rewardkit.registry import parse_device

    if args.device is not None:
        parse_device(args.device)  # a device this machine does not have is one line, before any work
    options: dict[str, dict[str, str]] = {}
    for key, value in _key_values(args.set, "--set").items():
        dimension, dot, option = key.partition(".")
        if not dot:
            raise UserInputError(f"cannot read --set {key}={value}; write DIMENSION.OPTION=VALUE, e.g. hpsv2.version=v2.0")
        options.setdefault(dimension, {})[option] = value
    run = evaluate(
        load_suite(args.suite, vbench_info=args.vbench_info),
        args.videos,
        model_name=args.model_name,
        out=args.out,
        prompts=args.prompts,
        dimensions=[name.strip() for name in args.dimensions.split(",")] if args.dimensions else None,
        weights=_key_values(args.weights, "--weights"),
        options=options,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        decode_device=args.decode_device,
    )
    if run.dimensions.empty:  # a non-main process of a multi-process run
        return EXIT_OK
    print(run.dimensions.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    for key, basis in run.summary.get("vbench_basis", {}).items():
        rests_on = f"{basis['dimensions']}/{basis['of']} dimensions, {basis['videos']} videos"
        if run.summary.get(key) is not None:
            print(f"VBench {key}: {100 * run.summary[key]:.2f}% ({rests_on})")
        else:
            missing = basis["missing"]
            print(f"VBench {key}: not computed, {len(missing)} dimension(s) missing: {', '.join(missing)} ({rests_on} scored)")
    short = run.summary["coverage"].get("short", {})
    if short:
        print(f"warning: {len(short)} prompt(s) of the suite have fewer videos than the suite expects"
              f", e.g. {next(iter(short))!r}", file=sys.stderr)
    print(f"run written to {run.path}")
    failed = int(run.dimensions["failed"].sum())
    if failed:
        print(f"{failed} row(s) failed; see the error column of {run.path / 'videos.csv'}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _run_leaderboard_add(args: argparse.Namespace) -> int:
    from rewardkit.eval.leaderboard import add_run

    for run in args.runs:
        path, action = add_run(run, args.dir, model=args.model)
        print(f"{run}: {action} ({path})")
    return EXIT_OK


def _run_leaderboard_render(args: argparse.Namespace) -> int:
    from rewardkit.eval.leaderboard import render

    boards = [Path(board) for board in args.boards] or sorted(Path(args.dir).glob("*.csv"))
    if not boards:
        raise UserInputError(f"no leaderboard CSV in {args.dir!r}; add one with `rewardkit leaderboard add RUN`")
    for board in boards:
        paths = render(board, args.out)
        print(f"{board}: " + ", ".join(str(path) for path in paths.values()))
    return EXIT_OK


def _run_regress(args: argparse.Namespace) -> int:
    from rewardkit.eval.regress import (
        compare,
        load_scores,
        markdown_report,
        write_baseline,
    )

    tolerances = {}
    for metric, value in _key_values(args.tol, "--tol").items():
        try:
            tolerances[metric] = float(value)
        except ValueError:
            raise UserInputError(f"--tol {metric}={value}: the tolerance must be a number") from None
        if not tolerances[metric] >= 0:
            raise UserInputError(f"--tol {metric}={value}: the tolerance must be a non-negative number")
    if args.update:
        print(f"baseline written to {write_baseline(args.results, args.baseline, tolerances)}")
        return EXIT_OK
    baseline = load_scores(args.baseline)
    if args.metrics:
        wanted = [name.strip() for name in args.metrics.split(",")]
        unknown = sorted(set(wanted) - set(baseline["metric"]))
        if unknown:
            raise UserInputError(f"--metrics names metric(s) not in the baseline: {', '.join(unknown)}; it has {', '.join(sorted(set(baseline['metric'])))}")
        baseline = baseline[baseline["metric"].isin(wanted)]
    comparisons = compare(
        load_scores(args.results),
        baseline,
        tolerances=tolerances,
        default_tolerance_value=args.default_tol,
        alpha=args.alpha,
    )
    report = markdown_report(
        comparisons, results=args.results, baseline=args.baseline, alpha=args.alpha, inconclusive=args.inconclusive
    )
    print(report, end="")
    if args.report:
        Path(args.report).write_text(report, encoding="utf-8")
    return EXIT_FAILED if any(item.failed(args.inconclusive) for item in comparisons) else EXIT_OK

