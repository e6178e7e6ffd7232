"""Run the PET few-shot sweep of notebook 01 and save it as JSON.

    python scripts/sweep_pet.py                          # the notebook's setting, about 70 min on 2 busy CPU cores
    python scripts/sweep_pet.py --ks 8 --seeds 0 --models tiny-gpt-zh --test-size 64 --output /tmp/quick.json

PET, a classification head and naive Bayes are trained on the same k reviews for every model,
k and seed; see `peft_lessons.sweeps.pet_few_shot`. An existing output file is kept unless
`--overwrite` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "pet_few_shot.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny-bert-zh", "tiny-gpt-zh"],
                        help="bundled model names or hub ids (default: both bundled models)")
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 32, 128],
                        help="numbers of labelled training reviews, each at least 2")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="random seeds; each picks its own sample and initialisation")
    parser.add_argument("--validation-size", type=int, default=256,
                        help="validation reviews used for early stopping and learning-rate choice")
    parser.add_argument("--test-size", type=int, default=None, help="score on a fixed sample of the test split")
    parser.add_argument("--epochs", type=int, default=15, help="maximum epochs per run (early stopping usually ends a run sooner)")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT)
    args = sweep_cli.parse(parser, argv)
    # A bad argument (for example --ks 1) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.pet_few_shot(
        args.models, args.ks, args.seeds, validation_size=args.validation_size, test_size=args.test_size,
        epochs=args.epochs, download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
