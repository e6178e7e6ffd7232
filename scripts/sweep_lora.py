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

import sweep_cli  # noqa: E402

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
    parser.add_argument("--rescale-below-rank", type=int, default=None,
                        help="also train LoRA settings below this rank at the chosen rate times r / 8, "
                             "so that rate x alpha / r stays as at the choice")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT, workers=True)
    args = sweep_cli.parse(parser, argv)
    configs = sweeps.LORA_CONFIGS[: args.configs] if args.configs else sweeps.LORA_CONFIGS
    grids = {family: rates[:1] for family, rates in sweeps.LORA_LEARNING_RATE_GRIDS.items()} if args.one_rate else None
    # A bad argument (for example --seeds -1) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.lora_comparison(
        args.model, args.seeds, train_size=args.train_size, validation_size=args.validation_size,
        test_size=args.test_size, configs=configs, learning_rate_grids=grids, epochs=args.epochs,
        workers=args.workers, run_log=args.run_log, rescale_below_rank=args.rescale_below_rank,
        download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
