"""Run the P-Tuning v2 comparison of notebook 03 and save it as JSON.

    python scripts/sweep_ptuning_v2.py --workers 2        # the notebook's setting on both cores of a 2-core machine
    python scripts/sweep_ptuning_v2.py --tasks ner --seeds 0 --train-size 64 --epochs 1 --prompt-lens 4 --output /tmp/quick.json

On the sentiment task and on People's Daily NER, P-Tuning v2 (a prefix in every layer),
P-Tuning-v1-style prompts at the input and full fine-tuning train on the same examples for
every seed. The v2 prefix is also trained at several prompt lengths and with
reparameterization. Each family's learning rate is picked per task on validation with the
first seed; see `peft_lessons.sweeps.ptuning_v2_comparison`. An existing output file is kept
unless `--overwrite` is given. The full setting is about 60 runs of tiny-bert-zh; `--workers 2`
runs two trainings side by side, and `--run-log` lets an interrupted sweep resume.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "ptuning_v2_comparison.json"

DESCRIPTION = """\
运行 notebook 03 的 P-Tuning v2 对比实验，把结果存为 JSON 文件。

在情感分类和人民日报 NER 两个任务上，P-Tuning v2（每一层都加前缀）、
P-Tuning v1 式的输入层提示和全量微调对每个随机种子都用同一批样本训练。v2
前缀还会换用多种提示长度训练，并加一组重参数化的训练。每类方法的学习率按任
务用第一个种子在验证集上选出。结果里还有不用神经网络的传统基线：情感分类
用朴素贝叶斯，NER 用 CRF，都在每个种子同样的训练样本上训练。完整设置约为
tiny-bert-zh 的 60 次训练；--workers 2 让两次训练同时进行，--run-log 让中断
的实验从断点续跑。输出文件已存在时，只有加 --overwrite 才会替换它。

示例：
  # notebook 中的设置，用上 2 核机器的两个核
  python scripts/sweep_ptuning_v2.py --workers 2
  # 缩小规模的快速试跑
  python scripts/sweep_ptuning_v2.py --tasks ner --seeds 0 --train-size 64 --epochs 1 --prompt-lens 4 --output /tmp/quick.json
"""


def main(argv=None) -> int:
    parser = sweep_cli.make_parser(description=DESCRIPTION)
    parser.add_argument("--model", default="tiny-bert-zh", help="内置模型名或 Hub 模型 id（默认：%(default)s）")
    parser.add_argument("--tasks", nargs="+", default=list(sweeps.V2_TASKS),
                        help="要运行的任务：sentiment、ner 或两者都给（默认：两者）")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="随机种子，可给多个；每个种子各自决定训练样本和初始化（默认：%(default)s）")
    parser.add_argument("--prompt-len", type=int, default=16,
                        help="方法对比中两种提示方法和重参数化训练所用的提示长度（默认：%(default)s）")
    parser.add_argument("--prompt-lens", nargs="+", type=int, default=[1, 4, 16, 64, 128],
                        help="P-Tuning v2 在 prompt_len 扫描中要试的前缀长度（默认：%(default)s）")
    parser.add_argument("--train-size", type=int, default=1000, help="每个随机种子、每个任务的训练样本数（默认：%(default)s）")
    parser.add_argument("--validation-size", type=int, default=256,
                        help="用于早停和选择学习率的验证样本数（默认：%(default)s）")
    parser.add_argument("--test-size", type=int, default=None,
                        help="评估用的测试样本数：NER 取测试集开头的句子，情感分类取固定抽样的评论；"
                             "不设时用整个测试集")
    parser.add_argument("--epochs", type=int, default=6,
                        help="每次训练的最大 epoch 数，早停通常会让训练更早结束（默认：%(default)s）")
    parser.add_argument("--one-rate", action="store_true", help="每类方法只试学习率候选值中的第一个")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT, workers=True)
    args = sweep_cli.parse(parser, argv)
    grids = ({family: rates[:1] for family, rates in sweeps.V2_LEARNING_RATE_GRIDS.items()}
             if args.one_rate else None)
    # A bad argument (for example --tasks pos) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.ptuning_v2_comparison(
        args.model, args.tasks, args.seeds, prompt_len=args.prompt_len, prompt_lens=args.prompt_lens,
        train_size=args.train_size, validation_size=args.validation_size, test_size=args.test_size,
        learning_rate_grids=grids, epochs=args.epochs, workers=args.workers, run_log=args.run_log,
        download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
