"""Write notebooks/04_lora.ipynb (unexecuted) from the cells below.

Run `python tools/build_notebook_04.py`, then
`python benchmarks/run_benchmarks.py --save-executed notebooks/04_lora.ipynb`, which executes
it as committed and records its wall time. The rank and target study reads
docs/results/lora_comparison.json, written by `python scripts/sweep_lora.py --workers 2`, and
the training step times come from docs/results/lora_benchmarks.json.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_cells import ROOT, SETUP_SOURCE as setup_source, code, md, write_notebook  # noqa: E402

TARGET = ROOT / "notebooks" / "04_lora.ipynb"

cells = [
    md(r"""
# 第 4 课：LoRA——用低秩矩阵微调

前几课的方法都在模型的输入或每一层前面加东西：提示向量、前缀。LoRA（Hu 等 2021，*LoRA: Low-Rank Adaptation of Large Language Models*）换了个方向：像普通微调一样直接改模型的权重，但不直接训练权重的更新量 $\Delta W$，而是把它写成两个很窄的矩阵之积 $BA$，只训练这两个小矩阵。

这一课在 `tiny-bert-zh` 和真实的评论数据上把 LoRA 从头跑一遍：

- 第 3 节，参数高效微调的几条路线，以及 LoRA 想避开的问题；
- 第 4 节，$W_0 + BA$，B 初始化为 0：包装之后模型的输出与原来完全相同；
- 第 5 节，训练一个 LoRA（r = 8，Wq 与 Wv），与只训练分类头、全量微调比较准确率、可训练参数、adapter 文件大小和训练时间；
- 第 6 节，合并（merge）之后推理没有额外延迟；撤销合并，换上为另一个任务训练的 adapter，输出变了，再换回来，输出一位不差地回来了；
- 第 7 节，rank 小部件：拖动 rank、勾选目标矩阵，实时看可训练参数和 adapter 大小；
- 第 8 节，rank 扫描 r ∈ {1, 2, 4, 8, 64}，以及固定参数预算下“调哪些矩阵”的小实验。

带 `# NBVAL_CHECK_OUTPUT` 的单元输出是确定的，测试时逐字比对；其余单元的数字来自训练与计时，每次运行可能略有差别。
"""),
    md("""
## 1. 运行环境

与前几课相同：缺少 `peft_lessons` 包时以可编辑模式安装，然后打印版本与计算设备。
"""),
    code(setup_source),
    md("""
## 2. 选择模型

默认使用课程自带的 `tiny-bert-zh`，CPU 上整本 notebook 几分钟跑完。

> **在 Colab GPU 上换用真实模型**：把下面改成 `BERT_MODEL = "bert-base-chinese"`，并令 `DOWNLOAD = True`。后面的单元不用改；每个结果下面的结论由代码根据数字生成。第 8 节的扫描会针对新模型重新训练，在 GPU 上也要一段时间。
"""),
    code("""
BERT_MODEL = "tiny-bert-zh"
DOWNLOAD = False  # 换成 Hugging Face Hub 上的模型时设为 True
MAX_LENGTH = 64
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import json
import tempfile
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np

from peft_lessons import data, lora, prompting, sweeps
from peft_lessons.checkpoints import load_llm, load_tokenizer, resolve_checkpoint
from peft_lessons.models import SequenceClassifier
from peft_lessons.plotting import format_table, setup_chinese_font
from peft_lessons.training import parameter_report
from peft_lessons.widgets import LoRARankPanel

setup_chinese_font()
sentiment = data.load_sentiment()
print(f"评论数据：训练 {len(sentiment.train):,} 条，验证 {len(sentiment.validation):,} 条，测试 {len(sentiment.test):,} 条")
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
tokenizer = load_tokenizer(BERT_MODEL, download=DOWNLOAD)
language_model = load_llm(BERT_MODEL, download=DOWNLOAD)
config = language_model.config
print(f"{BERT_MODEL}：{config.num_layers} 层，H = {config.hidden_size}，前馈层宽 {config.intermediate_size}，"
      f"{language_model.count_params():,} 个参数")
"""),
    md(r"""
## 3. 参数高效微调的几条路线

全量微调为每个下游任务得到一份与模型一样大的更新量 $\Delta\Phi$。模型大到几十亿参数时，训练和为每个任务各存一份都很贵。参数高效（parameter-efficient）微调的做法是只训练很少的参数：

- **Adapter**：在每个 Transformer 层里插入一个小的 MLP，只训练它。代价是模型变深了，每次推理都要多算这几层，批量为 1 的实时推理延迟明显增加。
- **BitFit**：只训练所有的偏置项。
- **Prompt Tuning**（P-Tuning、Prefix-Tuning、P-Tuning v2，见第 2、3 课）：在输入或每一层加可训练的向量。论文作者指出它不太好训练，效果也不随可训练参数增多而稳定提高；另外提示要占输入的位置，留给任务文本的长度变短了。

LoRA 的出发点是：像全量微调一样改权重，就不会增加推理延迟，也不占输入长度；再借助 Aghajanyan 等（2020）的观察，预训练模型适应一个任务时“内在维度”很低，把更新量限制在低秩的形式里，可训练参数就能很少。

下面算一算“提示占输入长度”在我们的模型上意味着什么。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
positions = config.max_positions
for prompt_len in (6, 20, 64):
    left = positions - prompt_len - 2  # 再减去 [CLS] 与 [SEP]
    print(f"提示占 {prompt_len:>2} 个位置：{BERT_MODEL} 的 {positions} 个位置里，留给评论的还有 {left} 个（{left / positions:.0%}）")
"""),
    md(r"""
## 4. $W_0 + BA$：初始化时什么都没变

对一个全连接层 $h = W_0 x$（$W_0$ 是 $d \times k$），LoRA 保持 $W_0$ 冻结，加一条旁路：

$$h = W_0 x + \frac{\alpha}{r} B A x,\qquad B \in \mathbb{R}^{d \times r},\ A \in \mathbb{R}^{r \times k},\ r \ll \min(d, k)$$

训练的只有 $A$ 和 $B$，共 $r(d + k)$ 个数。$A$ 用高斯分布初始化（本项目与 Hugging Face PEFT 的 gaussian 选项一样，标准差取 $1/r$），$B$ 初始化为 0，所以训练开始时 $BA = 0$，包装后的模型与原模型的输出完全相同。$\alpha / r$ 是缩放系数，论文固定 $\alpha$，希望换 $r$ 时不必重新调学习率；第 8 节会看到，在我们的模型上这一点并不总成立。

Keras 的 Dense 层按行向量计算 $h = x W_0$，核（kernel）的形状是 $[k, d]$，所以代码里的 `lora_a` 是 $[k, r]$、`lora_b` 是 $[r, d]$，正好是上式中 $A$、$B$ 的转置。Keras 3 自带的 `Dense.enable_lora` 也是这样排布的。

下面在 `tiny-bert-zh` 上接一个分类头，先算 4 条评论的 logits，再给每层的 Wq 和 Wv 加上 r = 8 的 LoRA，重新计算。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
examples = list(sentiment.test.texts[:4])
batch = tokenizer.encode_batch(examples, max_length=MAX_LENGTH)
keras.utils.set_random_seed(0)
classifier = SequenceClassifier(load_llm(BERT_MODEL, download=DOWNLOAD), num_labels=2)
before = np.asarray(classifier(batch, training=False))
info = lora.apply_lora(classifier, targets=("query", "value"), rank=8, alpha=16)
after = np.asarray(classifier(batch, training=False))
print(f"包装了 {len(info.paths)} 个矩阵，例如 {info.paths[0]} 与 {info.paths[1]}")
wrapper = lora.lora_layers(classifier)[info.paths[0]]
print(f"lora_a 形状 {tuple(wrapper.lora_a.shape)}，lora_b 形状 {tuple(wrapper.lora_b.shape)}，缩放 alpha / r = {wrapper.scale}")
print(f"lora_b 全为 0：{bool(np.all(np.asarray(wrapper.lora_b) == 0))}")
print(f"加 LoRA 前后 logits 的最大差：{np.abs(after - before).max()}")
print(parameter_report(classifier))
"""),
    md("""
最后一行是 Hugging Face PEFT 的 `print_trainable_parameters()` 的格式：可训练参数、全部参数、可训练的百分比。可训练的部分是 LoRA 矩阵加上分类头。

再和 Keras 3 自带的 LoRA 对一下：用同一个 $W_0$、同一对 $A$、$B$，两者的输出应当一致。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
x = rng.normal(size=(3, config.hidden_size)).astype("float32")
reference_dense = keras.layers.Dense(config.hidden_size)
reference_dense.build((None, config.hidden_size))
reference_dense.kernel.assign(np.asarray(wrapper.base.kernel))
reference_dense.bias.assign(np.asarray(wrapper.base.bias))
reference_dense.enable_lora(8, lora_alpha=16)
a = rng.normal(scale=0.02, size=tuple(wrapper.lora_a.shape)).astype("float32")
b = rng.normal(scale=0.02, size=tuple(wrapper.lora_b.shape)).astype("float32")
reference_dense.lora_kernel_a.assign(a)
reference_dense.lora_kernel_b.assign(b)
wrapper.lora_a.assign(a)
wrapper.lora_b.assign(b)
gap = np.abs(np.asarray(wrapper(x)) - np.asarray(reference_dense(x))).max()
print("与 keras.layers.Dense.enable_lora 的输出一致（最大差小于 1e-5，只有 float32 舍入误差）" if gap < 1e-5 else
      f"与 Keras 自带 LoRA 的输出不一致，最大差 {gap:.1e}")
_ = wrapper.lora_b.assign(np.zeros_like(b))  # 恢复 B = 0
"""),
    md("""
## 5. 训练 LoRA，与只训练分类头、全量微调比较

先亲手训练一次：r = 8，加在每层的 Wq 与 Wv 上，按验证准确率早停，学习率取扫描为 LoRA 选出的值。为了让整本 notebook 在 CPU 上几分钟跑完，这次只用 1,000 条评论、最多 3 轮，所以准确率会比后面表里的扫描结果（2,000 条、最多 6 轮、3 个种子）低一些。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
import datetime

import peft_lessons

RUN_SWEEP = False
SWEEP_FILE = Path(peft_lessons.__file__).resolve().parents[1] / "docs" / "results" / "lora_comparison.json"
saved = sweeps.load_results(SWEEP_FILE) if SWEEP_FILE.is_file() else None
if RUN_SWEEP or saved is None or saved["settings"]["models"] != [BERT_MODEL]:
    comparison = sweeps.lora_comparison(BERT_MODEL, download=DOWNLOAD, workers=2)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    print("结果已保存到", sweeps.save_results(comparison, Path(f"lora_comparison_{stamp}.json")))
else:
    comparison = saved
settings = comparison["settings"]
rates = {family: choice["chosen"] for family, choice in settings["learning_rates"].items()}
print(f"扫描日期 {comparison['created'][:10]}，{len(comparison['runs'])} 次训练；"
      f"机器：{comparison['machine']['cpu']}，{comparison['machine']['cores']} 核")
run_minutes = sum(run["seconds"] for run in comparison["runs"]) / 60
if comparison.get("runs_from_log"):
    print(f"最后一个进程用时 {comparison['minutes']} 分钟；另有 {comparison['runs_from_log']} 次训练取自之前中断的进程。"
          f"各次训练记下的时间合计 {run_minutes:.0f} 分钟（两个进程同时训练，时间有重叠）。")
else:
    print(f"用时 {comparison['minutes']} 分钟；各次训练记下的时间合计 {run_minutes:.0f} 分钟。")
print("在验证集上选出的学习率：" + "，".join(f"{family} {rate:g}" for family, rate in rates.items()))
for family, choice in settings["learning_rates"].items():
    grid = [float(rate) for rate in choice["candidates"]]
    if choice["chosen"] == max(grid) and len(grid) > 1:
        print(f"注意：{family} 选中的是候选里最大的学习率 {choice['chosen']:g}，更大的值也许更好，但扫描没有试。")
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
LIVE_TRAIN_SIZE, LIVE_EPOCHS = 1000, 3  # 在 GPU 上可以改成扫描的设置：settings["train_size"]、settings["epochs"]
train = data.sample_split(sentiment.train, LIVE_TRAIN_SIZE, seed=0)
validation = data.sample_split(sentiment.validation, settings["validation_size"], seed=0)
sentiment_run = lora.train_lora_classifier(load_llm(BERT_MODEL, download=DOWNLOAD), tokenizer, train, validation,
                                           test_split=sentiment.test, targets=("query", "value"), rank=8,
                                           alpha=settings["alpha"], learning_rate=rates["LoRA"],
                                           epochs=LIVE_EPOCHS, patience=settings["patience"],
                                           max_length=MAX_LENGTH, seed=0)
sentiment_model = sentiment_run["model"]
print(f"训练 {sentiment_run['best_epoch']} 轮取得最好的验证准确率，用时 {sentiment_run['seconds']:.0f} 秒")
print(f"测试准确率 {sentiment_run['test']['accuracy']:.3f}，AUC {sentiment_run['test']['roc_auc']:.3f}")
print(parameter_report(sentiment_model))
"""),
    md("""
只保存 adapter：LoRA 矩阵加分类头，存成 safetensors 和一个 JSON 配置。和整个模型的权重文件比一比大小。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
workdir = Path(tempfile.mkdtemp(prefix="lora_adapters_"))
sentiment_dir = lora.save_adapter(sentiment_model, workdir / "sentiment")
adapter_bytes = sum(path.stat().st_size for path in sentiment_dir.iterdir())
model_file = resolve_checkpoint(BERT_MODEL, download=DOWNLOAD) / "model.safetensors"
model_bytes = model_file.stat().st_size
for path in sorted(sentiment_dir.iterdir()):
    print(f"{path.name}：{path.stat().st_size / 1024:.1f} KiB")
print(f"adapter 合计 {adapter_bytes / 1024:.1f} KiB；整个模型 {model_file.name} {model_bytes / 1024 ** 2:.1f} MiB，"
      f"adapter 是它的 {adapter_bytes / model_bytes:.2%}")
"""),
    md("""
一次运行说明不了什么。下表来自扫描：每种方法 3 个随机种子，各自看同样的 2,000 条评论，报告测试准确率的均值 ± 标准差。朴素贝叶斯是传统基线。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
summary = sweeps.summarize(comparison["runs"], by=("method",))


def row_of(method):
    return next(r for r in summary if r["method"] == method)


def first_run(method):
    return next(r for r in comparison["runs"] if r["method"] == method)


total_params = parameter_report(SequenceClassifier(load_llm(BERT_MODEL, download=DOWNLOAD), num_labels=2)).total
# 训练时间取自基准测试（benchmarks/lora_benchmarks.py）：扫描时两个进程共用两个核，它记下的秒数不代表单独训练的速度。
BENCHMARK_FILE = SWEEP_FILE.with_name("lora_benchmarks.json")
benchmark = json.loads(BENCHMARK_FILE.read_text(encoding="utf-8")) if BENCHMARK_FILE.is_file() else None
step_ms = {}
if benchmark is not None and benchmark["model"] == BERT_MODEL:
    step_ms = {"只训练分类头": benchmark["training"]["head only"]["step_ms"],
               "Wq,Wv r=8": benchmark["training"]["LoRA"]["step_ms"],
               "全量微调": benchmark["training"]["full fine-tuning"]["step_ms"]}
rows = []
for method in ("只训练分类头", "Wq,Wv r=8", "全量微调"):
    stats, run = row_of(method), first_run(method)
    size = f"{run['adapter_bytes'] / 1024:.1f} KiB" if run["adapter_bytes"] else "-"
    step = f"{step_ms[method]:.0f}" if method in step_ms else "-"
    rows.append([method, f"{stats['mean']:.3f} ± {stats['std']:.3f}", f"{run['trainable_params']:,}",
                 f"{100 * run['trainable_params'] / total_params:.3f}%", size, step])
for reference in comparison["references"]:
    rows.append([reference["method"], f"{reference['test']['accuracy']:.3f}", "-", "-", "-", "-"])
print(format_table(["方法", "测试准确率", "可训练参数", "可训练 %", "adapter 张量", "每步训练毫秒"], rows))
print(f"表中的“可训练 %”都以不加 LoRA 的分类模型（{total_params:,} 个参数）为分母，三种方法因此可以直接比较；"
      "上面的 parameter_report 以加上 LoRA 之后的模型为分母，所以同一个 LoRA 的百分比在那里略小。")
if step_ms:
    print(f"每步训练时间来自 {BENCHMARK_FILE.name}（{benchmark['machine']}，{benchmark['date']}，批量 32）："
          f"LoRA 每步是全量微调的 {step_ms['Wq,Wv r=8'] / step_ms['全量微调']:.2f} 倍。")
lora_row, head_row, full_row = row_of("Wq,Wv r=8"), row_of("只训练分类头"), row_of("全量微调")
print(f"LoRA r=8 {sweeps.compare_means(lora_row, head_row)}只训练分类头，{sweeps.compare_means(lora_row, full_row)}全量微调"
      "（“在噪声范围内”指差距不超过两者标准差之和）。")
best = max(summary, key=lambda row: row["mean"])
bayes = comparison["references"][0]
below = best["mean"] < bayes["test"]["accuracy"]
print(f"扫描里最好的神经网络设置是 {best['method']}（{best['mean']:.3f}），{'仍低于' if below else '高于'}"
      f"{bayes['method']}的 {bayes['test']['accuracy']:.3f}" + ("：在这个小模型上，传统方法仍是要超过的基线。" if below else "。"))
"""),
    md("""
## 6. 合并、延迟与切换 adapter

部署时可以把 $\\frac{\\alpha}{r}BA$ 直接加进 $W_0$：合并之后模型又是原来的结构，推理与原模型完全一样快。先确认合并前后的预测相同，再量一量批量为 1 时的延迟：原模型、未合并的 LoRA 模型、合并后的模型。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
probe = tokenizer.encode_batch(list(sentiment.test.texts[:64]), max_length=MAX_LENGTH)
single_review = {key: value[:1] for key, value in probe.items()}
unmerged_logits = np.asarray(sentiment_model(probe, training=False))


def latency_ms(model, repeats=50):
    call = lambda: model(single_review, training=False)  # noqa: E731
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


base_model = SequenceClassifier(load_llm(BERT_MODEL, download=DOWNLOAD), num_labels=2)
timings = {"原模型（无 LoRA）": latency_ms(base_model), "LoRA，未合并": latency_ms(sentiment_model)}
lora.merge_lora(sentiment_model)
merged_logits = np.asarray(sentiment_model(probe, training=False))
timings["LoRA，合并后"] = latency_ms(sentiment_model)
print(f"合并前后 64 条评论的 logits 最大差 {np.abs(merged_logits - unmerged_logits).max():.1e}，"
      f"预测类别{'完全相同' if (merged_logits.argmax(1) == unmerged_logits.argmax(1)).all() else '有不同'}")
print(format_table(["模型", "批量为 1 的延迟（毫秒，中位数）"], [[name, f"{ms:.2f}"] for name, ms in timings.items()]))
ratio = timings["LoRA，合并后"] / timings["原模型（无 LoRA）"]
print(f"合并后的延迟是原模型的 {ratio:.2f} 倍" + ("：在计时噪声之内，合并没有带来额外延迟。" if abs(ratio - 1) < 0.1 else
                                          "：与原模型有差别，可以多运行几次看看是不是计时噪声。"))
# 上面是逐个算子执行的 eager 模式；部署时通常先编译。编译后的数字来自 benchmarks/lora_benchmarks.py。
if step_ms:
    compiled = benchmark["latency"]
    print(f"XLA 编译后（{benchmark['date']} 的基准测试）：原模型 {compiled['base_ms']:.2f} 毫秒，"
          f"未合并 {compiled['unmerged_ms'] / compiled['base_ms']:.2f} 倍，合并后 {compiled['merged_ms'] / compiled['base_ms']:.2f} 倍。"
          "合并后的模型与原模型做的计算完全相同，两者之间几个百分点的差别来自计时的波动。")
"""),
    md("""
**切换任务**：一个基座可以配多个 adapter。下面训练第二个 adapter，任务是区分一句话来自人民日报还是购物评论（与情感无关的另一个二分类任务），rank 和目标矩阵与第一个相同。然后在同一个模型上撤销合并，换上第二个 adapter，输出会变；再换回第一个，输出应当与换走之前一位不差。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
news = data.corpus_texts("train")
source_texts = news[:500] + list(sentiment.train.texts[:500])
source_labels = [0] * 500 + [1] * 500
source_split = data.sample_split(data.TextSplit(source_texts, source_labels), 1000, seed=0)
held_out = data.corpus_texts("validation")[:200] + list(sentiment.validation.texts[:200])
source_validation = data.TextSplit(held_out, [0] * 200 + [1] * 200)
source_run = lora.train_lora_classifier(load_llm(BERT_MODEL, download=DOWNLOAD), tokenizer, source_split,
                                        source_validation, targets=("query", "value"), rank=8,
                                        alpha=settings["alpha"], learning_rate=rates["LoRA"], epochs=2,
                                        patience=1, max_length=MAX_LENGTH, seed=0)
source_dir = lora.save_adapter(source_run["model"], workdir / "news_or_review")
print(f"第二个任务（0 = 人民日报，1 = 评论）：验证准确率 {source_run['validation']['accuracy']:.3f}")

lora.unmerge_lora(sentiment_model)
restored = np.asarray(sentiment_model(probe, training=False))
lora.load_adapter(sentiment_model, source_dir)
switched = np.asarray(sentiment_model(probe, training=False))
lora.load_adapter(sentiment_model, sentiment_dir)
back = np.asarray(sentiment_model(probe, training=False))
print(f"撤销合并后与合并前的 logits 最大差 {np.abs(restored - unmerged_logits).max():.1e}")
print(f"换上第二个 adapter：logits 最大变化 {np.abs(switched - unmerged_logits).max():.3f}")
print(f"换回情感 adapter：与换走之前的最大差 {np.abs(back - restored).max():.1e}")
"""),
    md("""
## 7. rank 小部件

拖动 rank 滑块、勾选要加 LoRA 的矩阵（Wq、Wk、Wv、Wo 和前馈层的两个矩阵），下面实时显示可训练参数、占比、adapter 的大小，以及 LoRA 在每一层放在哪里。面板调用的是 `lora.lora_summary`，与下面的单元是同一个函数。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
panel = LoRARankPanel({BERT_MODEL: language_model})
panel.widget
"""),
    code("""
# NBVAL_CHECK_OUTPUT
panel.rank.value = 4
for name, box in panel.targets.items():
    box.value = name in ("query", "key", "value", "output")
summary_4 = lora.lora_summary(language_model, panel.selected_targets, panel.rank.value)
print(f"面板：rank {panel.rank.value}，目标 {panel.selected_targets}")
print(f"trainable params: {summary_4['trainable']:,} || all params: {summary_4['total']:,} "
      f"|| trainable%: {summary_4['trainable_percent']:.4f}")
print("面板显示的数字与这里一致：", f"{summary_4['trainable']:,}" in panel.output.value)
"""),
    md("""
## 8. rank 扫描与“调哪些矩阵”

正文引用论文的两个结论：

1. LoRA 对 rank 不敏感：r = 1 就很有竞争力，r 从 8 加到 64 几乎不提高效果；
2. 参数预算固定时，把它分给多个矩阵、每个用较小的 rank（例如 Wq、Wk、Wv、Wo 各 r = 2），比全给一个矩阵、用较大的 rank（例如只调 Wq，r = 8）好。

下面的扫描在 2,000 条评论上对每个设置跑 3 个随机种子。前 5 个设置改变 Wq、Wv 上的 rank，后 7 个设置的参数预算相同（8 × 1 个矩阵 = 4 × 2 个矩阵 = 2 × 4 个矩阵）。

读结果前要知道扫描的两个设定：所有 LoRA 设置共用一个学习率（在 Wq、Wv、r = 8 上选出），$\\alpha$ 固定为 16。于是缩放系数 $\\alpha / r$ 随 r 变化：r = 8 时是 2，r = 1 时是 16。$BA$ 每一步的变化与“学习率 × $\\alpha / r$”成正比，还与 $A$ 的大小有关：$A$ 初始化的标准差是 $1/r$，r 越小 $A$ 越大。两者叠加，r 越小，同一个学习率走的步子越大（粗略估计按 $r^{-1.5}$ 变大，不止 $1/r$）。扫描脚本的 `--rescale-below-rank` 选项会把 rank 较小的设置再用“学习率 × r / 8”各训练一遍，让“学习率 × $\\alpha / r$”与选学习率时相同（按上面的估计，这还没有完全抵消 $A$ 变大的影响）；结果文件里有这些运行时，下表把它们标为“学习率 × r/8”。表里同时给出测试 AUC：AUC 接近 0.5 说明模型的输出与标签几乎无关。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
configs = settings["configs"]
labels = [label for label, _, _ in configs]
tuning_rank = settings.get("tuning_rank", 8)
rescaled = {label: f"{label}（学习率 × r/{tuning_rank}）" for label, _, rank in configs
            if settings.get("rescale_below_rank") and rank < settings["rescale_below_rank"]}
auc = {row["method"]: row for row in sweeps.summarize(comparison["runs"], by=("method",), metric="roc_auc")}


def table_row(label):
    stats, run = row_of(label), first_run(label)
    scale = f"{settings['alpha'] / run['rank']:g}" if run["rank"] else "-"
    size = f"{run['adapter_bytes'] / 1024:.1f} KiB" if run["adapter_bytes"] else "-"
    return [label, scale, f"{run['learning_rate']:g}", f"{stats['mean']:.3f} ± {stats['std']:.3f}",
            f"{auc[label]['mean']:.3f} ± {auc[label]['std']:.3f}", f"{run['trainable_params']:,}", size]


rows = [table_row(label) for label in [*labels, *rescaled.values(), "只训练分类头", "全量微调"]]
print(format_table(["设置", "α/r", "学习率", "测试准确率（3 个种子）", "测试 AUC", "可训练参数（含分类头）", "adapter 张量"],
                   rows))

rank_labels = [label for label, targets, _ in configs if targets == ["query", "value"]][:5]
ranks = [rank for label, targets, rank in configs if label in rank_labels]
budget_labels = labels[5:]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
axes[0].errorbar(ranks, [row_of(label)["mean"] for label in rank_labels],
                 yerr=[row_of(label)["std"] for label in rank_labels], marker="o", capsize=4, label="共用学习率")
rescaled_ranks = [rank for label, rank in zip(rank_labels, ranks) if label in rescaled]
if rescaled_ranks:
    rescaled_rank_labels = [rescaled[label] for label in rank_labels if label in rescaled]
    axes[0].errorbar(rescaled_ranks, [row_of(label)["mean"] for label in rescaled_rank_labels],
                     yerr=[row_of(label)["std"] for label in rescaled_rank_labels], marker="s", capsize=4,
                     label=f"学习率 × r/{tuning_rank}")
for method, style in (("只训练分类头", ":"), ("全量微调", "--")):
    axes[0].axhline(row_of(method)["mean"], linestyle=style, color="gray", label=method)
axes[0].set_xscale("log", base=2)
axes[0].set_xticks(ranks, [str(r) for r in ranks])
axes[0].set_xlabel("rank r（Wq、Wv）")
axes[0].set_ylabel("测试准确率")
axes[0].set_title("rank 扫描（3 个种子的均值 ± 标准差）")
axes[0].legend(fontsize=8)
budget_bars = [rescaled.get(label, label) for label in budget_labels]
axes[1].bar(range(len(budget_bars)), [row_of(label)["mean"] for label in budget_bars],
            yerr=[row_of(label)["std"] for label in budget_bars], capsize=4, color="tab:orange")
axes[1].axhline(row_of("只训练分类头")["mean"], linestyle=":", color="gray", label="只训练分类头")
axes[1].set_xticks(range(len(budget_bars)), [label.replace("（", "\\n（") for label in budget_bars], rotation=30,
                   ha="right", fontsize=8)
axes[1].set_ylim(0.4, None)
axes[1].set_ylabel("测试准确率")
axes[1].set_title("参数预算相同，放在不同的矩阵上")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
# 一次运行的测试 AUC 低于 0.6，就算这次训练失败：LoRA 把冻结骨干原有的特征破坏了（下面打印只训练分类头的 AUC 作对照）。
head_auc = auc["只训练分类头"]["mean"]
failures = {}
for run in comparison["runs"]:
    if run["family"] == "LoRA" and run["test"]["roc_auc"] < 0.6:
        failures[run["method"]] = failures.get(run["method"], 0) + 1
failed = list(failures)
if failures:
    counts = "，".join(f"{label}（{count}/{auc[label]['n']} 个种子）" for label, count in failures.items())
    print(f"训练失败（测试 AUC 低于 0.6，只训练分类头平均为 {head_auc:.2f}）的运行：{counts}。"
          "这些运行比不加 LoRA 还差：LoRA 的更新破坏了冻结骨干原有的特征。")
else:
    print("没有训练失败的运行：所有 LoRA 运行的测试 AUC 都不低于 0.6。")
for label, again in rescaled.items():
    print(f"  {label}：共用学习率 {row_of(label)['mean']:.3f}，学习率 × r/{tuning_rank} 后 {row_of(again)['mean']:.3f}"
          f"（{sweeps.compare_means(row_of(again), row_of(label))}共用学习率）")

# 每个 rank 用“学习率 × α/r 不变”的那次（有的话），与 r=8 比较。
middle = row_of("Wq,Wv r=8")
fair = {label: rescaled.get(label, label) for label in rank_labels if label != "Wq,Wv r=8"}
verdicts = {label: sweeps.compare_means(row_of(run_label), middle) for label, run_label in fair.items()}
rate_setting = "小 rank 用调小后的学习率" if rescaled else "共用一个学习率"
print(f"各 rank 与 r=8 相比（{rate_setting}）：" + "，".join(f"{label} {verdict}" for label, verdict in verdicts.items()))
if set(verdicts.values()) <= {"在噪声范围内"}:
    print(f"结论一：{rate_setting}时，各 rank 与 r=8 的差距都在噪声范围内，我们的模型也表现出对 rank 不敏感。")
else:
    worse = [label for label, verdict in verdicts.items() if verdict != "在噪声范围内"]
    print(f"结论一：{rate_setting}时，{'、'.join(worse)} 与 r=8 的差距超出了噪声，我们的模型没有表现出论文说的“对 rank 不敏感”。")
shared_failed = [label for label in labels if label in failed]
recovered = [label for label in shared_failed if label in rescaled and rescaled[label] not in failed]
if recovered:
    print(f"共用 r=8 的学习率时 {'、'.join(recovered)} 有失败的运行，学习率随 α/r 调小后训练成功：在我们的模型上，α 固定时换 rank "
          "要跟着调学习率，这与论文“换 r 不必重调”的说法不同。")
elif shared_failed and not rescaled:
    scales = "、".join(f"{scale:g}" for scale in sorted({settings["alpha"] / first_run(label)["rank"]
                                                          for label in shared_failed}))
    print(f"失败的设置的 α/r 是 {scales}，都大于选学习率时的 {settings['alpha'] / tuning_rank:g}。"
          "这提示失败的原因是步子太大，而不是 rank 太小；但这份结果里没有调小学习率的对照运行，还不能下结论。"
          "运行 `python scripts/sweep_lora.py --workers 2 --rescale-below-rank 4 --overwrite` 可以补上这些运行。")

spread = rescaled.get("Wq,Wk,Wv,Wo r=2", "Wq,Wk,Wv,Wo r=2")
single = [label for label in budget_labels if label.count("W") == 1]
compared = {label: sweeps.compare_means(row_of(spread), row_of(label)) for label in single}
wins = [label for label, verdict in compared.items() if verdict == "高于"]
losses = [label for label, verdict in compared.items() if verdict == "低于"]
print(f"结论二：{spread} 与 {len(single)} 个单矩阵 r=8 的设置相比，明显更高的：{'、'.join(wins) or '没有'}；"
      f"明显更低的：{'、'.join(losses) or '没有'}；其余在噪声范围内。")
if len(wins) == len(single):
    print("我们的模型支持“预算相同时，多个矩阵配小 rank 更好”。")
elif spread in failures:
    print(f"我们的模型没有支持“预算相同时，多个矩阵配小 rank 更好”。但 {spread} 的 α/r 是 "
          f"{settings['alpha'] / first_run(spread)['rank']:g}，{failures[spread]}/{auc[spread]['n']} 个种子训练失败，"
          "这个比较测到的更多是学习率是否合适，而不是预算怎么分，还不能下结论。")
else:
    print("我们的模型不能完全支持“预算相同时，多个矩阵配小 rank 更好”：不是对每个单矩阵设置都明显更好。")
"""),
    md("""
## 9. 小结与练习

- LoRA 把权重更新写成 $\\frac{\\alpha}{r}BA$，B 从 0 开始，所以训练起点就是原模型；每个矩阵只有 $r(d + k)$ 个可训练参数。
- 合并后模型结构与原来相同，推理没有额外延迟；撤销合并能精确恢复 $W_0$，一个基座可以随时换 adapter。
- 第 5、8 节给出了我们的小模型上 LoRA、只训练分类头与全量微调的实际差距，以及 rank 和目标矩阵的影响；朴素贝叶斯仍是要对照的传统基线。
- $\\alpha$ 固定时，r 越小，$\\alpha / r$ 越大，同一个学习率的步子也越大。比较不同 rank 时，要么让学习率随 $\\alpha / r$ 调整，要么为每个 rank 单独选学习率。

下一课从训练好的 adapter 里看 $\\Delta W$ 到底学到了什么：它的奇异向量与预训练权重 $W$ 有什么关系。

### 练习

1. 在第 7 节的面板上勾选前馈层的两个矩阵，r = 8 时可训练参数增加了多少？为什么前馈层的矩阵比注意力的矩阵“贵”？
2. 把第 5 节的 LoRA 换成 `init="kaiming"` 训练一次，与高斯初始化比较。一次运行的差距可信吗？
3. 用 `lora.load_adapter` 把第 6 节的情感 adapter 加载到一个用 `rank=4` 包装过的模型上，读一读报错信息。
4. 用 `lora.train_lora_classifier` 训练 r = 1 的 LoRA 两次：一次用第 5 节选出的学习率，一次用它的 1/8。看看验证准确率和 `history` 里的损失曲线有什么不同，再想想 $\\alpha / r$ 在其中起了什么作用。
"""),
]

write_notebook(cells, TARGET)
