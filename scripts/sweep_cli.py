"""Command-line pieces that the sweep scripts in this folder share.

Every sweep script writes one JSON file and refuses to replace it without `--overwrite`. The
scripts that train in worker processes also take `--workers` and `--run-log`. A bad argument
that the sweep function rejects ends in a one-line usage error instead of a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from peft_lessons import sweeps


def add_output_arguments(parser: argparse.ArgumentParser, default_output: Path, workers: bool = False) -> None:
    """Add --download, --output and --overwrite, and with `workers` also --workers and --run-log."""
    if workers:
        parser.add_argument("--workers", type=int, default=1,
                            help="processes that train runs side by side; 2 uses both cores of a 2-core machine")
        parser.add_argument("--run-log", type=Path, default=None,
                            help="file that records each finished run; rerunning with it skips those runs "
                                 "(default: the output path with .runs.jsonl)")
    parser.add_argument("--download", action="store_true", help="allow hub downloads for model names")
    parser.add_argument("--output", type=Path, default=default_output,
                        help="JSON file to write (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the arguments, stop if the output exists without --overwrite, and fill in the default run log."""
    args = parser.parse_args(argv)
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} 已经存在；要替换它请加 --overwrite，或者用 --output 换一个文件名")
    if hasattr(args, "run_log") and args.run_log is None:
        args.run_log = args.output.with_suffix(".runs.jsonl")
    return args


def run_and_save(parser: argparse.ArgumentParser, args: argparse.Namespace, run) -> int:
    """Call `run(log)`, save its result to args.output and print the path."""
    try:
        results = run(lambda line: print(line, flush=True))
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.error(str(error))
    path = sweeps.save_results(results, args.output, overwrite=args.overwrite)
    message = f"wrote {path} ({len(results['runs'])} runs, {results['minutes']} min)"
    if getattr(args, "run_log", None) is not None:
        message += f"; finished runs are also in {args.run_log}"
    print(message)
    return 0
