"""Sweeps over seeds and training-set sizes that are too slow for a notebook's time budget.

A sweep runs from a script in `scripts/` (one command), writes its results as JSON with the
settings, seeds, machine and date, and a notebook plots that file. The same functions run
inside a notebook when a student wants to repeat the sweep, for example on a Colab GPU with
a bigger model.
"""

from __future__ import annotations

import datetime
import json
import numbers
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np

from . import data

# ---------------------------------------------------------------------------
# Bookkeeping shared by every sweep
# ---------------------------------------------------------------------------


def machine_description() -> dict:
    """Describe the machine a result was measured on: CPU, cores, memory, accelerators, library versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory_gib = None
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory_gib = round(kib / 1024 ** 2, 1)
    except (OSError, AttributeError):
        pass
    import keras
    import tensorflow as tf

    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gib": memory_gib,
        "accelerators": [device.name for device in tf.config.list_physical_devices() if device.device_type != "CPU"],
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _result_header(experiment: str, started: datetime.datetime, runs_from_log: int | None = None) -> dict:
    """Return the bookkeeping every sweep result starts with: name, start time, minutes, command and machine.

    `minutes` covers this process only. With a run log, `runs_from_log` counts the runs that an
    earlier, interrupted process had finished, which this process read instead of training.
    """
    header = {"experiment": experiment, "created": started.isoformat(timespec="seconds")}
    if runs_from_log is not None:
        header["runs_from_log"] = runs_from_log
    header.update(
        minutes=round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60, 1),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "",
        machine=machine_description(),
    )
    return header


def save_results(results: dict, path, overwrite: bool = False) -> Path:
    """Write sweep results as UTF-8 JSON; an existing file is replaced only with `overwrite=True`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} 已经存在；为了不覆盖已有结果，请换一个文件名，或者传入 overwrite=True。")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def load_results(path) -> dict:
    """Read a results file written by `save_results`."""
    path = Path(path)
    if path.is_dir():
        example = path / "ptuning_comparison.json"
        raise IsADirectoryError(f"{path} 是一个目录，不是结果文件；请给出其中的 .json 文件，例如 {example}。")
    if not path.is_file():
        raise FileNotFoundError(f"找不到结果文件 {path}；请先运行生成它的脚本（见文件名对应的 scripts/ 脚本）。")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} 不是有效的 JSON 结果文件（{error}）；它可能没写完或被改坏了，"
                         "请重新运行生成它的脚本，输出到一个新文件。") from None
    if not isinstance(results, dict) or "runs" not in results or "settings" not in results:
        raise ValueError(f"{path} 是 JSON，但不是 scripts/sweep_*.py 写出的结果（缺少 runs 或 settings）；"
                         "请检查文件名。")
    return results


def summarize(runs: list[dict], by=("model", "method", "k"), metric: str = "accuracy", split: str = "test") -> list[dict]:
    """Group runs by the keys in `by` and return the mean, standard deviation and count of a metric.

    The standard deviation is the sample one (ddof=1), 0 for a single run. Groups keep the
    order in which they first appear. A dotted `metric` reads a nested value, for example
    "overall.f1" for the entity F1 of an NER run.
    """
    groups: dict[tuple, list[float]] = {}
    for run in runs:
        value = run[split]
        for part in metric.split("."):
            value = value[part]
        groups.setdefault(tuple(run[key] for key in by), []).append(float(value))
    rows = []
    for key, values in groups.items():
        values = np.asarray(values)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append({**dict(zip(by, key)), "mean": float(values.mean()), "std": std, "n": len(values)})
    return rows


def repeat_split(split: data.TextSplit, min_size: int) -> data.TextSplit:
    """Repeat a small training split until it has at least `min_size` examples.

    With 8 examples and a batch of 16, an epoch would be a single step, and early stopping
    would judge the model after every step. Repeating the examples makes each epoch a few
    steps long without adding any new information.
    """
    if len(split) >= min_size:
        return split
    copies = -(-min_size // len(split))
    return data.TextSplit(split.texts * copies, np.tile(split.labels, copies))


def _check_int_list(name: str, values, minimum: int) -> list[int]:
    values = [values] if isinstance(values, numbers.Integral) else list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum]
    if not values or bad:
        raise ValueError(f"{name} 需要由不小于 {minimum} 的整数组成的非空列表，收到 {values!r}。")
    return [int(v) for v in values]


# ---------------------------------------------------------------------------
# PET few-shot sweep (notebook 01)
# ---------------------------------------------------------------------------

PET_TEMPLATES = {"bert": "{text}总之很{answer}。", "gpt2": "{text}总之很{answer}"}
PET_VERBALIZER = {0: "差", 1: "好"}
# On tiny-bert-zh with 32 training reviews, 1e-4 reached a higher validation accuracy than 3e-4 for both
# methods. NOTE: tiny-gpt-zh and public checkpoints use the same rates without their own tuning.
PET_LEARNING_RATES = {"PET": 1e-4, "分类头": 1e-4}


def pet_few_shot(models=("tiny-bert-zh", "tiny-gpt-zh"), ks=(8, 32, 128), seeds=(0, 1, 2), *,
                 validation_size: int = 256, test_size: int | None = None, epochs: int = 15, patience: int = 3,
                 min_epoch_examples: int = 64, learning_rates: dict | None = None, max_length: int = 64,
                 batch_size: int = 16, download: bool = False, log=print) -> dict:
    """Compare PET, a classification head and naive Bayes trained on the same k reviews.

    For every model, k and seed, the three methods see the same `data.sample_split(train, k,
    seed)`. The neural methods stop early on a fixed validation sample of `validation_size`
    reviews, and all are scored on the test split (or its first `test_size` reviews of a
    fixed sample, for quick runs). References: each model's zero-shot prompt before and after
    calibration, and naive Bayes on the whole train split.
    """
    from . import prompting
    from .checkpoints import load_llm, load_tokenizer

    models = [models] if isinstance(models, str) else list(models)
    ks = _check_int_list("ks", ks, 2)  # naive Bayes needs both labels, which k >= 2 gives
    seeds = _check_int_list("seeds", seeds, 0)
    rates = dict(PET_LEARNING_RATES, **(learning_rates or {}))
    sentiment = data.load_sentiment()
    too_big = [k for k in ks if k > len(sentiment.train)]
    if too_big:
        raise ValueError(f"ks 中的 {too_big} 超过了训练集的 {len(sentiment.train)} 条评论；请把 k 设得小一些。")
    validation = data.sample_split(sentiment.validation, validation_size, seed=0)
    test = sentiment.test if test_size is None else data.sample_split(sentiment.test, test_size, seed=0)
    settings = {
        "models": models, "ks": ks, "seeds": seeds, "validation_size": validation_size,
        "test_size": len(test), "epochs": epochs, "patience": patience, "min_epoch_examples": min_epoch_examples,
        "learning_rates": rates, "max_length": max_length, "batch_size": batch_size,
        "templates": PET_TEMPLATES, "verbalizer": {str(k): v for k, v in PET_VERBALIZER.items()},
    }
    started = datetime.datetime.now(datetime.timezone.utc)
    runs, references = [], []

    full_bayes = data.train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
    references.append({"model": "-", "method": "朴素贝叶斯（全部训练集）", "train_size": len(sentiment.train),
                       "test": data.evaluate_classifier(full_bayes, test.texts, test.labels)})
    for name in models:
        tokenizer = load_tokenizer(name, download=download)
        language_model = load_llm(name, download=download)
        template = prompting.Template(PET_TEMPLATES[language_model.config.model_type])
        verbalizer = prompting.Verbalizer(PET_VERBALIZER, tokenizer)
        scores = prompting.score_labels(language_model, tokenizer, template, verbalizer, test.texts, max_length)
        prior = prompting.label_prior(language_model, tokenizer, template, verbalizer, max_length=max_length)
        for calibrated, probabilities in ((False, scores.probabilities),
                                          (True, prompting.calibrate(scores.probabilities, prior))):
            references.append({"model": name, "method": "零样本（校准后）" if calibrated else "零样本",
                               "train_size": 0, "test": prompting.evaluate_probabilities(test.labels, probabilities)})

        for k in ks:
            for seed in seeds:
                few = data.sample_split(sentiment.train, k, seed=seed)
                repeated = repeat_split(few, min_epoch_examples)
                common = dict(test_split=test, max_length=max_length, batch_size=batch_size, epochs=epochs,
                              patience=patience, seed=seed)
                pet = prompting.train_pet(load_llm(name, download=download), tokenizer, template, verbalizer,
                                          repeated, validation, learning_rate=rates["PET"], **common)
                head = prompting.train_classifier_baseline(load_llm(name, download=download), tokenizer, repeated,
                                                           validation, learning_rate=rates["分类头"], **common)
                bayes = data.train_naive_bayes(few.texts, few.labels)
                for result in (pet, head):
                    runs.append({"model": name, "method": result["method"], "k": k, "seed": seed,
                                 "best_epoch": result["best_epoch"], "seconds": round(result["seconds"], 1),
                                 "trainable_params": result["trainable_params"],
                                 "validation": result["validation"], "test": result["test"]})
                runs.append({"model": name, "method": "朴素贝叶斯", "k": k, "seed": seed,
                             "test": data.evaluate_classifier(bayes, test.texts, test.labels)})
                log(f"{name} k={k} seed={seed}: PET {pet['test']['accuracy']:.3f}, "
                    f"分类头 {head['test']['accuracy']:.3f}, 朴素贝叶斯 {runs[-1]['test']['accuracy']:.3f}")
    return {
        **_result_header("pet_few_shot", started),
        "settings": settings,
        "references": references,
        "runs": runs,
    }


def compare_means(a: dict, b: dict) -> str:
    """Say whether mean a is above, below or within noise of mean b (rows from `summarize`).

    The difference counts only when it is larger than the sum of the two standard deviations,
    a deliberately cautious rule for 3 seeds. Returns "高于", "低于" or "在噪声范围内".
    """
    difference = a["mean"] - b["mean"]
    if abs(difference) <= a["std"] + b["std"]:
        return "在噪声范围内"
    return "高于" if difference > 0 else "低于"


# ---------------------------------------------------------------------------
# P-Tuning comparison (notebook 02)
# ---------------------------------------------------------------------------

# Six pseudo tokens for both architectures: GPT-2 `P P P text P P P`, BERT `P P text P P [MASK] P P`.
PTUNING_TEMPLATES = {"bert": (2, 2, 2), "gpt2": (3, 3)}
PTUNING_LEARNING_RATES = {"P-Tuning（解冻主干）": 1e-4, "分类头": 1e-4}
# The frozen mode trains only the prompt encoder, which needs a much larger step. Its rate is
# chosen per model from this grid by validation accuracy at the largest k with the first seed.
FROZEN_LEARNING_RATE_GRID = (1e-3, 3e-3, 1e-2)


def ptuning_comparison(models=("tiny-bert-zh", "tiny-gpt-zh"), ks=(32, 256), seeds=(0, 1, 2), *,
                       full_train: bool = True, full_train_epochs: int = 1, validation_size: int = 256,
                       test_size: int | None = None, epochs: int = 20, patience: int = 4,
                       min_epoch_examples: int = 64, frozen_learning_rates=FROZEN_LEARNING_RATE_GRID,
                       max_length: int = 64, batch_size: int = 16, download: bool = False, log=print) -> dict:
    """Compare P-Tuning with the backbone frozen and unfrozen against a classification head.

    Every method trains on the same `data.sample_split(train, k, seed)` for each model, k and
    seed. With `full_train`, each method also trains once (first seed) on the whole train
    split for at most `full_train_epochs` epochs. References: each model's hand-written prompt
    zero-shot before and after calibration (the PET template of notebook 01), and naive Bayes
    on the whole train split. The frozen mode's learning rate is picked per model from
    `frozen_learning_rates` on the validation sample, and the choice is saved.
    """
    from . import prompting, ptuning
    from .checkpoints import load_llm, load_tokenizer

    models = [models] if isinstance(models, str) else list(models)
    ks = _check_int_list("ks", ks, 2)
    seeds = _check_int_list("seeds", seeds, 0)
    frozen_learning_rates = [float(rate) for rate in frozen_learning_rates]
    sentiment = data.load_sentiment()
    validation = data.sample_split(sentiment.validation, validation_size, seed=0)
    test = sentiment.test if test_size is None else data.sample_split(sentiment.test, test_size, seed=0)
    started = datetime.datetime.now(datetime.timezone.utc)
    runs, references, learning_rates = [], [], {}

    full_bayes = data.train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
    references.append({"model": "-", "method": "朴素贝叶斯（全部训练集）", "train_size": len(sentiment.train),
                       "test": data.evaluate_classifier(full_bayes, test.texts, test.labels)})

    def record(name, result, k, seed, learning_rate, **extra):
        runs.append({"model": name, "method": result["method"], "k": k, "seed": seed,
                     "learning_rate": learning_rate, "best_epoch": result["best_epoch"],
                     "epochs_run": len(result["history"]["loss"]), "loss": result["history"]["loss"],
                     "seconds": round(result["seconds"], 1), "trainable_params": result["trainable_params"],
                     "validation": result["validation"], "test": result["test"], **extra})
        log(f"{name} k={k} seed={seed} {result['method']} lr={learning_rate:g}: "
            f"验证 {result['validation']['accuracy']:.3f}，测试 {result['test']['accuracy']:.3f}，"
            f"{result['seconds']:.0f} 秒")

    for name in models:
        tokenizer = load_tokenizer(name, download=download)
        language_model = load_llm(name, download=download)
        model_type = language_model.config.model_type
        template = PTUNING_TEMPLATES[model_type]
        verbalizer = prompting.Verbalizer(PET_VERBALIZER, tokenizer)
        manual = prompting.Template(PET_TEMPLATES[model_type])
        scores = prompting.score_labels(language_model, tokenizer, manual, verbalizer, test.texts, max_length)
        prior = prompting.label_prior(language_model, tokenizer, manual, verbalizer, max_length=max_length)
        for calibrated, probabilities in ((False, scores.probabilities),
                                          (True, prompting.calibrate(scores.probabilities, prior))):
            references.append({"model": name, "method": "人工提示零样本（校准后）" if calibrated else "人工提示零样本",
                               "train_size": 0, "test": prompting.evaluate_probabilities(test.labels, probabilities)})

        def frozen(split, seed, learning_rate, run_epochs, run_patience):
            return ptuning.train_ptuning(load_llm(name, download=download), tokenizer, template, verbalizer, split,
                                         validation, test_split=test, freeze_backbone=True, max_length=max_length,
                                         batch_size=batch_size, epochs=run_epochs, patience=run_patience,
                                         learning_rate=learning_rate, seed=seed)

        def others(split, seed, run_epochs, run_patience):
            unfrozen_rate = PTUNING_LEARNING_RATES["P-Tuning（解冻主干）"]
            unfrozen = ptuning.train_ptuning(load_llm(name, download=download), tokenizer, template, verbalizer,
                                             split, validation, test_split=test, freeze_backbone=False,
                                             max_length=max_length, batch_size=batch_size, epochs=run_epochs,
                                             patience=run_patience, learning_rate=unfrozen_rate, seed=seed)
            head_rate = PTUNING_LEARNING_RATES["分类头"]
            head = prompting.train_classifier_baseline(load_llm(name, download=download), tokenizer, split,
                                                       validation, test_split=test, max_length=max_length,
                                                       batch_size=batch_size, epochs=run_epochs,
                                                       patience=run_patience, learning_rate=head_rate, seed=seed)
            return [(unfrozen, unfrozen_rate), (head, head_rate)]

        # Learning rate of the frozen mode: one run per candidate at the largest k and the first seed.
        tuning_split = repeat_split(data.sample_split(sentiment.train, ks[-1], seed=seeds[0]), min_epoch_examples)
        candidates = {rate: frozen(tuning_split, seeds[0], rate, epochs, patience) for rate in frozen_learning_rates}
        best_rate = max(candidates, key=lambda rate: candidates[rate]["validation"]["accuracy"])
        learning_rates[name] = {"candidates": {f"{rate:g}": result["validation"]["accuracy"]
                                               for rate, result in candidates.items()}, "chosen": best_rate}
        log(f"{name}：冻结主干的学习率在 {frozen_learning_rates} 中选 {best_rate:g}")

        for k in ks:
            for seed in seeds:
                split = repeat_split(data.sample_split(sentiment.train, k, seed=seed), min_epoch_examples)
                if k == ks[-1] and seed == seeds[0]:
                    result = candidates[best_rate]
                else:
                    result = frozen(split, seed, best_rate, epochs, patience)
                record(name, result, k, seed, best_rate)
                for other, rate in others(split, seed, epochs, patience):
                    record(name, other, k, seed, rate)
        if full_train:
            full_k = len(sentiment.train)
            record(name, frozen(sentiment.train, seeds[0], best_rate, full_train_epochs, 1), full_k, seeds[0],
                   best_rate)
            for other, rate in others(sentiment.train, seeds[0], full_train_epochs, 1):
                record(name, other, full_k, seeds[0], rate)

    return {
        **_result_header("ptuning_comparison", started),
        "settings": {
            "models": models, "ks": ks, "seeds": seeds, "full_train": full_train,
            "full_train_size": len(sentiment.train), "full_train_epochs": full_train_epochs,
            "validation_size": validation_size, "test_size": len(test), "epochs": epochs, "patience": patience,
            "min_epoch_examples": min_epoch_examples, "max_length": max_length, "batch_size": batch_size,
            "templates": {key: list(value) for key, value in PTUNING_TEMPLATES.items()},
            "manual_templates": PET_TEMPLATES, "verbalizer": {str(k): v for k, v in PET_VERBALIZER.items()},
            "learning_rates": dict(PTUNING_LEARNING_RATES, **{"P-Tuning（冻结主干）": learning_rates}),
        },
        "references": references,
        "runs": runs,
    }


def merge_results(parts: list[dict]) -> dict:
    """Combine result files of one experiment that ran for different models, e.g. in parallel processes.

    Runs and per-model references are concatenated in the given order and references shared
    by all parts (model "-") are kept once. Settings must agree except for `models` and the
    per-model learning-rate choices. `minutes` is the sum over the parts.
    """
    if not parts:
        raise ValueError("parts 为空；请至少传入一个结果。")
    experiments = {part["experiment"] for part in parts}
    if len(experiments) != 1:
        raise ValueError(f"只能合并同一个实验的结果，收到 {sorted(experiments)}。")

    def comparable(settings):
        rest = {key: value for key, value in settings.items() if key not in ("models", "learning_rates")}
        return json.dumps(rest, sort_keys=True, ensure_ascii=False)

    first = parts[0]
    for part in parts[1:]:
        if comparable(part["settings"]) != comparable(first["settings"]):
            raise ValueError("这些结果的实验设置不同（模型与学习率之外），不能合并；请用相同的参数重新运行。")
    settings = dict(first["settings"], models=[model for part in parts for model in part["settings"]["models"]])
    if "learning_rates" in first["settings"]:
        rates = json.loads(json.dumps(first["settings"]["learning_rates"]))
        for part in parts[1:]:
            for key, value in part["settings"]["learning_rates"].items():
                if isinstance(value, dict) and isinstance(rates.get(key), dict):
                    rates[key].update(value)
        settings["learning_rates"] = rates
    shared = [r for r in first["references"] if r["model"] == "-"]
    return {
        "experiment": first["experiment"],
        "created": min(part["created"] for part in parts),
        "minutes": round(sum(part["minutes"] for part in parts), 1),
        "command": " ; ".join(part["command"] for part in parts),
        "machine": first["machine"],
        "settings": settings,
        "references": shared + [r for part in parts for r in part["references"] if r["model"] != "-"],
        "runs": [run for part in parts for run in part["runs"]],
    }


# ---------------------------------------------------------------------------
# LoRA comparison (notebook 04)
# ---------------------------------------------------------------------------

# (label, targets, rank). The first five vary the rank on Wq and Wv, and the rest spend a similar
# budget on different matrices: 8 * 1 matrix = 4 * 2 matrices = 2 * 4 matrices.
LORA_CONFIGS = (
    ("Wq,Wv r=1", ("query", "value"), 1),
    ("Wq,Wv r=2", ("query", "value"), 2),
    ("Wq,Wv r=4", ("query", "value"), 4),
    ("Wq,Wv r=8", ("query", "value"), 8),
    ("Wq,Wv r=64", ("query", "value"), 64),
    ("Wq r=8", ("query",), 8),
    ("Wk r=8", ("key",), 8),
    ("Wv r=8", ("value",), 8),
    ("Wo r=8", ("output",), 8),
    ("Wq,Wk r=4", ("query", "key"), 4),
    ("Wq,Wv r=4（预算）", ("query", "value"), 4),
    ("Wq,Wk,Wv,Wo r=2", ("query", "key", "value", "output"), 2),
)
# Learning-rate candidates per method family, tried with the first seed and picked on validation.
LORA_LEARNING_RATE_GRIDS = {"LoRA": (5e-4, 1e-3, 2e-3), "只训练分类头": (1e-3, 3e-3), "全量微调": (5e-5, 1e-4)}


def _lora_run(job: dict) -> dict:
    """Train one run of `lora_comparison` and return its record. It runs inline or in a worker process.

    `job` names the model, the family ("只训练分类头", "全量微调" or "LoRA"), the LoRA label,
    targets and rank, the seed, the learning rate and the shared settings. The data samples are
    rebuilt from their seeds, so every process trains on the same reviews.
    """
    from . import lora, prompting
    from .checkpoints import load_llm, load_tokenizer
    from .models import SequenceClassifier
    from .training import parameter_report, set_seed, train_classifier

    model, family, seed, rate = job["model"], job["family"], job["seed"], job["learning_rate"]
    settings = job["settings"]
    sentiment = data.load_sentiment()
    validation = data.sample_split(sentiment.validation, settings["validation_size"], seed=0)
    test = sentiment.test if settings["test_size"] is None else data.sample_split(sentiment.test,
                                                                                   settings["test_size"], seed=0)
    train = data.sample_split(sentiment.train, settings["train_size"], seed=seed)
    tokenizer = load_tokenizer(model, download=job["download"])
    language_model = load_llm(model, download=job["download"])
    max_length, batch_size = settings["max_length"], settings["batch_size"]
    common = dict(max_length=max_length, batch_size=batch_size, epochs=settings["epochs"],
                  patience=settings["patience"], learning_rate=rate, seed=seed)

    if family == "只训练分类头":
        set_seed(seed)
        classifier = SequenceClassifier(language_model, num_labels=2)
        classifier.backbone.trainable = False
        fit = train_classifier(classifier, tokenizer, train, validation, **common)
        scores = {name: prompting.evaluate_probabilities(
            split.labels, prompting._classifier_probabilities(classifier, tokenizer, split, max_length, batch_size))
            for name, split in (("validation", validation), ("test", test))}
        result = dict(fit, trainable_params=parameter_report(classifier).trainable, **scores)
    elif family == "全量微调":
        result = prompting.train_classifier_baseline(language_model, tokenizer, train, validation, test_split=test,
                                                     **common)
    else:
        result = lora.train_lora_classifier(language_model, tokenizer, train, validation, test_split=test,
                                            targets=tuple(job["targets"]), rank=job["rank"], alpha=settings["alpha"],
                                            **common)
        result["adapter_bytes"] = lora.adapter_size_bytes(result["model"])

    return {"model": model, "method": job["label"], "family": family, "targets": list(job["targets"]),
            "rank": job["rank"], "seed": seed, "learning_rate": rate, "best_epoch": result["best_epoch"],
            "epochs_run": len(result["history"]["loss"]), "seconds": round(result["seconds"], 1),
            "trainable_params": result["trainable_params"], "adapter_bytes": result.get("adapter_bytes"),
            "validation": result["validation"], "test": result["test"]}


def _score(metrics: dict) -> float:
    """The main score of a run's metrics: accuracy for classification, overall entity F1 for NER."""
    if "accuracy" in metrics:
        return metrics["accuracy"]
    return metrics["overall"]["f1"]


def _job_key(job: dict) -> str:
    """Identify a job by everything that decides its result, so a finished run can be found again."""
    identity = {key: job[key] for key in ("model", "family", "label", "seed", "learning_rate", "settings")}
    for key in ("targets", "rank", "task", "prompt_len", "reparameterization"):
        if key in job:  # LoRA jobs name targets and rank, P-Tuning v2 jobs a task and a prompt
            identity[key] = job[key]
    return json.dumps(identity, sort_keys=True, ensure_ascii=False)


def _read_run_log(path: Path | None) -> dict:
    """Read the finished runs of an interrupted sweep: one JSON object per line, {"key": ..., "record": ...}."""
    if path is None or not path.is_file():
        return {}
    finished = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # A killed process can leave its last line cut off, and that run is trained again.
        finished[entry["key"]] = entry["record"]
    return finished


def _run_jobs(jobs: list[dict], workers: int, log, run_log: Path | None = None, runner=None) -> list[dict]:
    """Run `runner` (default `_lora_run`) on every job, in this process or in `workers` fresh processes, keeping the job order.

    With `run_log`, each finished run is appended to that file at once, and jobs already
    recorded there are not trained again, so a sweep stopped halfway resumes where it stopped.
    """
    runner = runner or _lora_run
    finished = _read_run_log(run_log)

    def report(job, record):
        task = f"{record['task']} " if "task" in record else ""
        log(f"{task}{record['method']} seed={record['seed']} lr={record['learning_rate']:g}: "
            f"验证 {_score(record['validation']):.3f}，测试 {_score(record['test']):.3f}，"
            f"可训练 {record['trainable_params']:,}，{record['seconds']:.0f} 秒")
        if run_log is not None:
            run_log.parent.mkdir(parents=True, exist_ok=True)
            with run_log.open("a", encoding="utf-8") as file:
                file.write(json.dumps({"key": _job_key(job), "record": record}, ensure_ascii=False) + "\n")

    records = {index: finished[_job_key(job)] for index, job in enumerate(jobs) if _job_key(job) in finished}
    if records:
        log(f"从 {run_log} 读到 {len(records)} 次已完成的训练，跳过它们")
    pending = [index for index in range(len(jobs)) if index not in records]

    if workers == 1:
        for index in pending:
            records[index] = runner(jobs[index])
            report(jobs[index], records[index])
        return [records[index] for index in range(len(jobs))]

    import concurrent.futures
    import multiprocessing

    # "spawn" starts clean interpreters, because forking a process whose TensorFlow runtime already runs
    # threads can leave the child with locks that no thread will release.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(runner, jobs[index]): index for index in pending}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            records[index] = future.result()
            report(jobs[index], records[index])
    return [records[index] for index in range(len(jobs))]


def lora_comparison(model: str = "tiny-bert-zh", seeds=(0, 1, 2), *, train_size: int = 2000,
                    validation_size: int = 512, test_size: int | None = None, configs=LORA_CONFIGS,
                    learning_rate_grids: dict | None = None, alpha: float = 16, epochs: int = 6, patience: int = 2,
                    max_length: int = 64, batch_size: int = 32, workers: int = 1, run_log=None,
                    rescale_below_rank: int | None = None, download: bool = False, log=print) -> dict:
    """Compare LoRA settings with training only the head and with full fine-tuning on the sentiment task.

    Every method trains on the same `data.sample_split(train, train_size, seed)` for each seed
    and stops early on a fixed validation sample. Each family's learning rate is picked from
    `learning_rate_grids` by validation accuracy with the first seed and the first LoRA setting
    that uses Wq and Wv at rank 8 (or the first setting), and all LoRA settings share it.
    Results include trainable parameters, the adapter size in bytes, seconds and test metrics.
    With `workers` > 1 the runs of each phase (learning-rate choice, then the rest) are spread
    over that many processes. Each run sets its own seed and rebuilds its data sample, so the
    process that runs it does not change its data or initialisation. With `run_log` (a path),
    finished runs are appended there as they end and reused when the same sweep runs again.

    The LoRA path is scaled by alpha / r, so with a fixed alpha a smaller rank multiplies each
    step of B A by a larger factor. With `rescale_below_rank`, every LoRA setting whose rank is
    below it also trains, for every seed, at the chosen rate times r / r_tuned (r_tuned is the
    rank the rate was picked at), which keeps learning rate x alpha / r as at the choice. These
    runs are labelled "<label>（学习率 × r/r_tuned）".
    """
    seeds = _check_int_list("seeds", seeds, 0)
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers 必须是不小于 1 的整数（同时训练的进程数），收到 {workers!r}；2 核机器上用 2。")
    if rescale_below_rank is not None:
        rescale_below_rank = _check_int_list("rescale_below_rank", [rescale_below_rank], 2)[0]
    grids = dict(LORA_LEARNING_RATE_GRIDS, **(learning_rate_grids or {}))
    configs = [(label, tuple(targets), int(rank)) for label, targets, rank in configs]
    if not configs:
        raise ValueError("configs 为空；请至少给出一个 (名称, 目标层, rank) 设置。")
    sentiment = data.load_sentiment()
    test = sentiment.test if test_size is None else data.sample_split(sentiment.test, test_size, seed=0)
    started = datetime.datetime.now(datetime.timezone.utc)
    settings = {"train_size": train_size, "validation_size": validation_size, "test_size": test_size, "alpha": alpha,
                "epochs": epochs, "patience": patience, "max_length": max_length, "batch_size": batch_size}

    def job(family, seed, rate, label=None, targets=(), rank=0):
        return {"model": model, "family": family, "label": label or family, "targets": list(targets), "rank": rank,
                "seed": seed, "learning_rate": float(rate), "download": download, "settings": settings}

    first_seed = seeds[0]
    tuning_label, tuning_targets, tuning_rank = next((c for c in configs if c[1] == ("query", "value") and c[2] == 8),
                                                     configs[0])
    tuning_jobs = {}
    for family in ("只训练分类头", "全量微调", "LoRA"):
        for rate in grids[family]:
            if family == "LoRA":
                tuning_jobs[family, float(rate)] = job(family, first_seed, rate, tuning_label, tuning_targets,
                                                       tuning_rank)
            else:
                tuning_jobs[family, float(rate)] = job(family, first_seed, rate)
    run_log = None if run_log is None else Path(run_log)
    logged_before = len(_read_run_log(run_log))
    tuned = dict(zip(tuning_jobs, _run_jobs(list(tuning_jobs.values()), workers, log, run_log)))
    chosen, reused = {}, {}
    for family in ("只训练分类头", "全量微调", "LoRA"):
        candidates = {rate: record for (name, rate), record in tuned.items() if name == family}
        best = max(candidates, key=lambda rate: candidates[rate]["validation"]["accuracy"])
        chosen[family] = {"candidates": {f"{rate:g}": record["validation"]["accuracy"]
                                         for rate, record in candidates.items()}, "chosen": best}
        reused[family] = candidates[best]
        log(f"{family} 的学习率在 {list(grids[family])} 中选 {best:g}")

    planned = []  # (record already made, or None) and the job for it, in the order of the saved runs
    for seed in seeds:
        for family in ("只训练分类头", "全量微调"):
            done = reused[family] if seed == first_seed else None
            planned.append((done, job(family, seed, chosen[family]["chosen"])))
        for label, targets, rank in configs:
            done = None
            if seed == first_seed and (targets, rank) == (tuning_targets, tuning_rank):
                done = dict(reused["LoRA"], method=label)
            planned.append((done, job("LoRA", seed, chosen["LoRA"]["chosen"], label, targets, rank)))
        if rescale_below_rank is not None:
            for label, targets, rank in configs:
                if rank < rescale_below_rank:
                    rate = chosen["LoRA"]["chosen"] * rank / tuning_rank
                    planned.append((None, job("LoRA", seed, rate, f"{label}（学习率 × r/{tuning_rank}）", targets,
                                              rank)))
    fresh = iter(_run_jobs([task for done, task in planned if done is None], workers, log, run_log))
    runs = [done if done is not None else next(fresh) for done, _ in planned]

    first_train = data.sample_split(sentiment.train, train_size, seed=first_seed)
    full_bayes = data.train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
    small_bayes = data.train_naive_bayes(first_train.texts, first_train.labels)
    return {
        **_result_header("lora_comparison", started, runs_from_log=logged_before),
        "settings": {"models": [model], "seeds": seeds, "train_size": train_size, "validation_size": validation_size,
                     "test_size": len(test), "alpha": alpha, "epochs": epochs, "patience": patience,
                     "max_length": max_length, "batch_size": batch_size, "workers": workers,
                     "configs": [[label, list(targets), rank] for label, targets, rank in configs],
                     "rescale_below_rank": rescale_below_rank, "tuning_rank": tuning_rank,
                     "learning_rates": chosen},
        "references": [
            {"model": "-", "method": "朴素贝叶斯（全部训练集）", "train_size": len(sentiment.train),
             "test": data.evaluate_classifier(full_bayes, test.texts, test.labels)},
            {"model": "-", "method": f"朴素贝叶斯（同样 {train_size} 条）", "train_size": train_size,
             "test": data.evaluate_classifier(small_bayes, test.texts, test.labels)},
        ],
        "runs": runs,
    }


# ---------------------------------------------------------------------------
# P-Tuning v2 comparison (notebook 03)
# ---------------------------------------------------------------------------

V2_TASKS = ("sentiment", "ner")
V2_FAMILIES = ("P-Tuning v2", "输入层提示（P-Tuning v1 式）", "全量微调")
# Learning-rate candidates per family, tried with the first seed on each task and picked on validation.
# With two candidates each, every family picked the larger on NER (full fine-tuning scored an entity
# F1 of 0 at 5e-5 and 0.11 at 1e-4 on validation), so each grid got a third, larger value.
V2_LEARNING_RATE_GRIDS = {"P-Tuning v2": (3e-3, 1e-2, 3e-2), "输入层提示（P-Tuning v1 式）": (3e-3, 1e-2, 3e-2),
                          "全量微调": (5e-5, 1e-4, 3e-4)}


def _v2_run(job: dict) -> dict:
    """Train one run of `ptuning_v2_comparison` and return its record, inline or in a worker process.

    The data samples are rebuilt from their seeds, so every process trains on the same examples.
    NER sentences are cut to `max_length - 2` characters. Every method then trains on the same
    sentences, including input prompts, which take positions.
    """
    from . import prompting, ptuning_v2
    from .checkpoints import load_llm, load_tokenizer

    settings, seed, rate, family = job["settings"], job["seed"], job["learning_rate"], job["family"]
    tokenizer = load_tokenizer(job["model"], download=job["download"])
    language_model = load_llm(job["model"], download=job["download"])
    common = dict(max_length=settings["max_length"], batch_size=settings["batch_size"], epochs=settings["epochs"],
                  patience=settings["patience"], learning_rate=rate, seed=seed)
    prompt = dict(prompt_len=job["prompt_len"])
    if job["task"] == "sentiment":
        sentiment = data.load_sentiment()
        validation = data.sample_split(sentiment.validation, settings["validation_size"], seed=0)
        test = sentiment.test if settings["test_size"] is None else data.sample_split(
            sentiment.test, settings["test_size"], seed=0)
        train = data.sample_split(sentiment.train, settings["train_size"], seed=seed)
        if family == "P-Tuning v2":
            result = ptuning_v2.train_prefix_classifier(language_model, tokenizer, train, validation, test_split=test,
                                                        reparameterization=job["reparameterization"], **prompt,
                                                        **common)
        elif family == "输入层提示（P-Tuning v1 式）":
            result = ptuning_v2.train_input_prompt_classifier(language_model, tokenizer, train, validation,
                                                              test_split=test, **prompt, **common)
        else:
            result = prompting.train_classifier_baseline(language_model, tokenizer, train, validation,
                                                         test_split=test, **common)
    else:
        ner = data.load_ner(max_chars=settings["max_length"] - 2)
        validation = ner.validation[:settings["validation_size"]]
        test = ner.test if settings["test_size"] is None else ner.test[:settings["test_size"]]
        splits = (ner.train, validation, test)
        ner_common = dict(common, train_size=settings["train_size"])
        if family == "P-Tuning v2":
            result = ptuning_v2.train_prefix_ner(language_model, tokenizer, splits,
                                                 reparameterization=job["reparameterization"], **prompt,
                                                 **ner_common)
        elif family == "输入层提示（P-Tuning v1 式）":
            result = ptuning_v2.train_input_prompt_ner(language_model, tokenizer, splits, **prompt, **ner_common)
        else:
            result = ptuning_v2.train_full_ner(language_model, tokenizer, splits, **ner_common)

    history = result["history"]
    return {"model": job["model"], "task": job["task"], "method": job["label"], "family": family,
            "prompt_len": job["prompt_len"], "reparameterization": job["reparameterization"], "seed": seed,
            "learning_rate": rate, "best_epoch": result["best_epoch"], "epochs_run": len(history["loss"]),
            "loss": [round(float(value), 5) for value in history["loss"]], "seconds": round(result["seconds"], 1),
            "trainable_params": result["trainable_params"], "validation": result["validation"],
            "test": result["test"]}


def _v2_references(tasks, seeds, train_size, test_size, max_length) -> list[dict]:
    """Traditional baselines of `ptuning_v2_comparison`, trained without any neural network.

    Sentiment: naive Bayes on the whole train split, and on each seed's `train_size` reviews.
    NER: a CRF on each seed's `train_size` sentences, the very sample the neural runs of that seed
    train on, scored by entity F1 on the same test sentences.
    """
    from .ptuning_v2 import _subsample, entity_scores

    references = []
    if "sentiment" in tasks:
        sentiment = data.load_sentiment()
        test = sentiment.test if test_size is None else data.sample_split(sentiment.test, test_size, seed=0)
        bayes = data.train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
        references.append({"model": "-", "task": "sentiment", "method": "朴素贝叶斯（全部训练集）",
                           "train_size": len(sentiment.train),
                           "test": data.evaluate_classifier(bayes, test.texts, test.labels)})
        for seed in seeds:
            train = data.sample_split(sentiment.train, train_size, seed=seed)
            bayes = data.train_naive_bayes(train.texts, train.labels)
            references.append({"model": "-", "task": "sentiment", "method": "朴素贝叶斯（同样的训练样本）",
                               "seed": seed, "train_size": len(train),
                               "test": data.evaluate_classifier(bayes, test.texts, test.labels)})
    if "ner" in tasks:
        ner = data.load_ner(max_chars=max_length - 2)
        test = ner.test if test_size is None else ner.test[:test_size]
        for seed in seeds:
            train = _subsample(ner.train, train_size, seed)
            tagger = data.train_crf_tagger(train)
            predicted = tagger.predict([chars for chars, _ in test])
            references.append({"model": "-", "task": "ner", "method": "CRF（同样的训练样本）", "seed": seed,
                               "train_size": len(train), "crf_params": tagger.params,
                               "test": entity_scores([tags for _, tags in test], predicted)})
    return references


def _check_tasks(tasks) -> list[str]:
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [task for task in tasks if task not in V2_TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks={tasks!r} 无效：只能从 {list(V2_TASKS)} 中选，至少一个。")
    return tasks


def ptuning_v2_comparison(model: str = "tiny-bert-zh", tasks=V2_TASKS, seeds=(0, 1, 2), *, prompt_len: int = 16,
                          prompt_lens=(1, 4, 16, 64, 128), train_size: int = 1000, validation_size: int = 256,
                          test_size: int | None = None, learning_rate_grids: dict | None = None, epochs: int = 6,
                          patience: int = 2, max_length: int = 64, batch_size: int = 32, workers: int = 1,
                          run_log=None, download: bool = False, log=print) -> dict:
    """Compare P-Tuning v2, P-Tuning-v1-style input prompts and full fine-tuning on sentiment and NER.

    For each task and seed, every method trains on the same sample of `train_size` examples
    (reviews, or People's Daily sentences cut to `max_length - 2` characters) with a linear
    head. It stops early on a fixed validation sample, by accuracy for sentiment and by entity
    F1 for NER. Both prompt methods use `prompt_len` and keep the backbone frozen. The v2 prefix is
    also trained at every length in `prompt_lens` and with reparameterization (an MLP) at
    `prompt_len`. Each family's learning rate is picked per task from `learning_rate_grids`
    on validation with the first seed, and the prompt-length and reparameterization runs reuse
    the v2 choice. `workers` and `run_log` work as in `lora_comparison`. `references` contains the
    traditional baselines of `_v2_references`: naive Bayes for sentiment and a CRF for NER.

    The defaults of 1,000 training and 256 validation examples are chosen for time. With 2,000
    and 512, one NER run took about 5 to 8 minutes on a 2-core CPU, and the 54 runs would have taken
    3 to 4 hours with two workers.
    """
    from .checkpoints import load_llm

    tasks = _check_tasks(tasks)
    seeds = _check_int_list("seeds", seeds, 0)
    prompt_lens = _check_int_list("prompt_lens", prompt_lens, 1)
    prompt_len = _check_int_list("prompt_len", [prompt_len], 1)[0]
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers 必须是不小于 1 的整数（同时训练的进程数），收到 {workers!r}；2 核机器上用 2。")
    max_positions = load_llm(model, download=download).config.max_positions
    if max_length + prompt_len > max_positions:
        raise ValueError(f"输入层提示占用位置：max_length={max_length} 加 prompt_len={prompt_len} 超过了 {model} 的 "
                         f"max_positions={max_positions}；请减小其中一个。")
    grids = dict(V2_LEARNING_RATE_GRIDS, **(learning_rate_grids or {}))
    started = datetime.datetime.now(datetime.timezone.utc)
    settings = {"train_size": train_size, "validation_size": validation_size, "test_size": test_size,
                "epochs": epochs, "patience": patience, "max_length": max_length, "batch_size": batch_size}

    def job(task, family, seed, rate, length=prompt_len, reparameterization=False, label=None):
        if family == "全量微调":
            length = 0
        return {"model": model, "task": task, "family": family, "label": label or family, "prompt_len": length,
                "reparameterization": reparameterization, "seed": seed, "learning_rate": float(rate),
                "download": download, "settings": settings}

    first_seed = seeds[0]
    run_log = None if run_log is None else Path(run_log)
    logged_before = len(_read_run_log(run_log))
    tuning_jobs = {(task, family, float(rate)): job(task, family, first_seed, rate)
                   for task in tasks for family in V2_FAMILIES for rate in grids[family]}
    tuned = dict(zip(tuning_jobs, _run_jobs(list(tuning_jobs.values()), workers, log, run_log, runner=_v2_run)))
    chosen, reused = {}, {}
    for task in tasks:
        chosen[task] = {}
        for family in V2_FAMILIES:
            candidates = {rate: record for (t, f, rate), record in tuned.items() if (t, f) == (task, family)}
            best = max(candidates, key=lambda rate: _score(candidates[rate]["validation"]))
            chosen[task][family] = {"candidates": {f"{rate:g}": _score(record["validation"])
                                                   for rate, record in candidates.items()}, "chosen": best}
            reused[task, family] = candidates[best]
            log(f"{task}：{family} 的学习率在 {list(grids[family])} 中选 {best:g}")

    planned = []  # (record already made, or None) and its job, in the order of the saved runs
    for task in tasks:
        rates = {family: chosen[task][family]["chosen"] for family in V2_FAMILIES}
        for seed in seeds:
            for family in V2_FAMILIES:
                done = reused[task, family] if seed == first_seed else None
                planned.append((done, job(task, family, seed, rates[family])))
            planned.append((None, job(task, "P-Tuning v2", seed, rates["P-Tuning v2"], reparameterization=True,
                                      label="P-Tuning v2（重参数化）")))
            for length in prompt_lens:
                if length != prompt_len:
                    planned.append((None, job(task, "P-Tuning v2", seed, rates["P-Tuning v2"], length,
                                              label=f"P-Tuning v2 P={length}")))
    fresh = iter(_run_jobs([task for done, task in planned if done is None], workers, log, run_log,
                           runner=_v2_run))
    runs = [done if done is not None else next(fresh) for done, _ in planned]

    references = _v2_references(tasks, seeds, train_size, test_size, max_length)
    return {
        **_result_header("ptuning_v2_comparison", started, runs_from_log=logged_before),
        "settings": {"models": [model], "tasks": tasks, "seeds": seeds, "prompt_len": prompt_len,
                     "prompt_lens": prompt_lens, "train_size": train_size, "validation_size": validation_size,
                     "test_size": test_size, "epochs": epochs, "patience": patience, "max_length": max_length,
                     "batch_size": batch_size, "workers": workers, "learning_rates": chosen},
        "references": references,
        "runs": runs,
    }
