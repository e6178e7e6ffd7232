"""Run the PET few-shot sweep of notebook 01 and save it as JSON.

    python scripts/sweep_pet.py                          # the notebook's setting, about 70 min on 2 busy CPU cores
    python scripts/sweep_pet.py --ks 8 --seeds 0 --models tiny-gpt-zh --test-size 64 --output /tmp/quick.json

PET, a classification head and naive Bayes are trained on the same k reviews for every model,
k and seed; see `peft_lessons.sweeps.pet_few_shot`. An existing output file is kept unless
`--overwrite` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "pet_few_shot.json"

DESCRIPTION = """\
运行 notebook 01 的 PET 小样本实验，把结果存为 JSON 文件。

对每个模型、每个 k 和每个随机种子，PET、分类头和朴素贝叶斯都在同一批 k 条
评论上训练。输出文件已存在时，只有加 --overwrite 才会替换它。

示例：
  # notebook 中的设置，在 2 个繁忙的 CPU 核上约需 70 分钟
  python scripts/sweep_pet.py
  # 缩小规模的快速试跑
  python scripts/sweep_pet.py --ks 8 --seeds 0 --models tiny-gpt-zh --test-size 64 --output /tmp/quick.json
"""


def main(argv=None) -> int:
    parser = sweep_cli.make_parser(description=DESCRIPTION)
    parser.add_argument("--models", nargs="+", default=["tiny-bert-zh", "tiny-gpt-zh"],
                        help="一个或多个内置模型名或 Hub 模型 id（默认：两个内置模型）")
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 32, 128],
                        help="有标注训练评论的条数 k，可给多个，每个至少为 2（默认：%(default)s）")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="随机种子，可给多个；每个种子各自决定训练样本和初始化（默认：%(default)s）")
    parser.add_argument("--validation-size", type=int, default=256,
                        help="从验证集中固定抽取的评论条数，用于早停（默认：%(default)s）")
    parser.add_argument("--test-size", type=int, default=None,
                        help="评估用的测试评论条数（固定抽样）；不设时用整个测试集")
    parser.add_argument("--epochs", type=int, default=15, help="每次训练的最大 epoch 数，早停通常会让训练更早结束（默认：%(default)s）")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT)
    args = sweep_cli.parse(parser, argv)
    # A bad argument (for example --ks 1) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.pet_few_shot(
        args.models, args.ks, args.seeds, validation_size=args.validation_size, test_size=args.test_size,
        epochs=args.epochs, download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
