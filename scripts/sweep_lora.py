"""Run the LoRA comparison of notebook 04 and save it as JSON.

    python scripts/sweep_lora.py --workers 2             # the notebook's setting on both cores of a 2-core machine
    python scripts/sweep_lora.py --seeds 0 --train-size 64 --test-size 64 --epochs 1 --configs 2 --output /tmp/quick.json

LoRA at several ranks and on several weight matrices, training only the classification head
and full fine-tuning are trained on the same reviews for every seed. Each family's learning
rate is picked on the validation split with the first seed; see
`peft_lessons.sweeps.lora_comparison`. An existing output file is kept unless `--overwrite`
is given. The full setting is about 46 runs of tiny-bert-zh on 2,000 reviews. It is estimated at a
few hours in one process on 2 CPU cores, and `--workers 2` runs two trainings side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "lora_comparison.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-bert-zh", help="bundled model name or hub id")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="random seeds; each picks its own sample and initialisation")
    parser.add_argument("--train-size", type=int, default=2000, help="labelled training reviews per seed")
    parser.add_argument("--validation-size", type=int, default=512,
                        help="validation reviews used for early stopping and learning-rate choice")
    parser.add_argument("--test-size", type=int, default=None, help="score on a fixed sample of the test split")
    parser.add_argument("--epochs", type=int, default=6, help="maximum epochs per run (early stopping usually ends a run sooner)")
    parser.add_argument("--configs", type=int, default=None, help="use only the first N LoRA settings")
    parser.add_argument("--one-rate", action="store_true", help="try only the first learning rate of each grid")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that train runs side by side; 2 uses both cores of a 2-core machine")
    parser.add_argument("--run-log", type=Path, default=None,
                        help="file that records each finished run; rerunning with it skips those runs "
                             "(default: the output path with .runs.jsonl)")
    parser.add_argument("--rescale-below-rank", type=int, default=None,
                        help="also train LoRA settings below this rank at the chosen rate times r / 8, "
                             "so that rate x alpha / r stays as at the choice")
    parser.add_argument("--download", action="store_true", help="allow hub downloads for model names")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} 已经存在；要替换它请加 --overwrite，或者用 --output 换一个文件名")

    run_log = args.run_log or args.output.with_suffix(".runs.jsonl")
    configs = sweeps.LORA_CONFIGS[: args.configs] if args.configs else sweeps.LORA_CONFIGS
    grids = {family: rates[:1] for family, rates in sweeps.LORA_LEARNING_RATE_GRIDS.items()} if args.one_rate else None
    try:
        results = sweeps.lora_comparison(args.model, args.seeds, train_size=args.train_size,
                                         validation_size=args.validation_size, test_size=args.test_size,
                                         configs=configs, learning_rate_grids=grids, epochs=args.epochs,
                                         workers=args.workers, run_log=run_log,
                                         rescale_below_rank=args.rescale_below_rank,
                                         download=args.download, log=lambda line: print(line, flush=True))
    except (ValueError, TypeError, FileNotFoundError) as error:
        # A bad argument (for example --seeds -1) gets a one-line message instead of a traceback.
        parser.error(str(error))
    path = sweeps.save_results(results, args.output, overwrite=args.overwrite)
    print(f"wrote {path} ({len(results['runs'])} runs, {results['minutes']} min); finished runs are also in {run_log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
