"""Command-line pieces that the sweep scripts in this folder share.

Every sweep script writes one JSON file and refuses to replace it without `--overwrite`. The
scripts that train in worker processes also take `--workers` and `--run-log`. A bad argument
that the sweep function rejects ends in a one-line usage error instead of a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from peft_lessons import sweeps


def make_parser(description: str) -> argparse.ArgumentParser:
    """Create a parser that keeps the description's line breaks and describes -h in Chinese, like the other options."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("-h", "--help", action="help", help="显示本帮助信息并退出")
    return parser


def add_output_arguments(parser: argparse.ArgumentParser, default_output: Path, workers: bool = False) -> None:
    """Add --download, --output and --overwrite, and with `workers` also --workers and --run-log."""
    if workers:
        parser.add_argument("--workers", type=int, default=1,
                            help="同时训练的进程数；在 2 核机器上设为 2 可以用上两个核（默认：%(default)s）")
        parser.add_argument("--run-log", type=Path, default=None,
                            help="记录已完成训练的文件，用它重新运行时会跳过其中的训练"
                                 "（默认：输出文件改用 .runs.jsonl 后缀）")
    parser.add_argument("--download", action="store_true",
                        help="允许把模型名当作 Hugging Face Hub 模型 id 下载")
    parser.add_argument("--output", type=Path, default=default_output,
                        help="写入结果的 JSON 文件，默认为 %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="输出文件已存在时替换它")


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
