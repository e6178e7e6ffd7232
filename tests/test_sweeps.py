import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from peft_lessons import data, sweeps
from peft_lessons.checkpoints import load_config
from peft_lessons.ptuning import prompt_encoder_params

ROOT = Path(__file__).resolve().parents[1]


def run(method, k, seed, accuracy):
    return {"model": "m", "method": method, "k": k, "seed": seed, "test": {"accuracy": accuracy}}


def test_summarize_mean_and_sample_std():
    runs = [run("PET", 8, 0, 0.5), run("PET", 8, 1, 0.7), run("PET", 8, 2, 0.6), run("头", 8, 0, 0.55)]
    rows = sweeps.summarize(runs)
    assert [(r["method"], r["n"]) for r in rows] == [("PET", 3), ("头", 1)]
    assert rows[0]["mean"] == pytest.approx(0.6)
    assert rows[0]["std"] == pytest.approx(0.1)  # sample std of 0.5, 0.6, 0.7
    assert rows[1]["std"] == 0.0


def test_summarize_reads_nested_metric():
    runs = [{"method": "v2", "test": {"overall": {"f1": value}}} for value in (0.2, 0.4)]
    (row,) = sweeps.summarize(runs, by=("method",), metric="overall.f1")
    assert row["mean"] == pytest.approx(0.3)
    assert row["n"] == 2


def test_compare_means_noise_rule():
    a = {"mean": 0.70, "std": 0.02}
    assert sweeps.compare_means(a, {"mean": 0.60, "std": 0.03}) == "高于"
    assert sweeps.compare_means(a, {"mean": 0.80, "std": 0.03}) == "低于"
    assert sweeps.compare_means(a, {"mean": 0.66, "std": 0.03}) == "在噪声范围内"


def test_repeat_split_keeps_order():
    split = data.TextSplit(["好", "差", "行"], [1, 0, 1])
    repeated = sweeps.repeat_split(split, 7)
    assert len(repeated) == 9
    assert repeated.texts[3:6] == split.texts
    assert np.array_equal(repeated.labels[:3], split.labels)
    assert sweeps.repeat_split(split, 2) is split


def test_save_results_refuses_to_overwrite(tmp_path):
    path = sweeps.save_results({"settings": {}, "runs": [1]}, tmp_path / "r.json")
    with pytest.raises(FileExistsError, match="已经存在"):
        sweeps.save_results({"settings": {}, "runs": [2]}, path)
    assert sweeps.load_results(path) == {"settings": {}, "runs": [1]}
    sweeps.save_results({"settings": {}, "runs": [2]}, path, overwrite=True)
    assert sweeps.load_results(path) == {"settings": {}, "runs": [2]}


def test_load_results_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="找不到结果文件"):
        sweeps.load_results(tmp_path / "none.json")


def test_load_results_rejects_bad_paths(tmp_path):
    with pytest.raises(IsADirectoryError, match="是一个目录"):
        sweeps.load_results(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"runs": [', encoding="utf-8")
    with pytest.raises(ValueError, match="不是有效的 JSON"):
        sweeps.load_results(broken)
    other = tmp_path / "other.json"
    other.write_text('{"name": "not a sweep"}', encoding="utf-8")
    with pytest.raises(ValueError, match="缺少 runs 或 settings"):
        sweeps.load_results(other)


def test_sweep_script_bad_argument_message(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "sweep_pet.py"), "--ks", "1", "--output", "out.json"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "ks 需要由不小于 2 的整数组成" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_pet_few_shot_rejects_k_below_two():
    with pytest.raises(ValueError, match="不小于 2 的整数"):
        sweeps.pet_few_shot(ks=[1])


def test_sweep_pet_script_reduced_setting(tmp_path):
    output = tmp_path / "pet.json"
    command = [sys.executable, str(ROOT / "scripts" / "sweep_pet.py"), "--models", "tiny-gpt-zh", "--ks", "8",
               "--seeds", "0", "1", "--validation-size", "32", "--test-size", "64", "--epochs", "1",
               "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    results = json.loads(output.read_text(encoding="utf-8"))

    assert results["settings"]["seeds"] == [0, 1]
    assert results["settings"]["test_size"] == 64
    assert results["machine"]["cores"] >= 1
    assert results["created"][:4].isdigit()
    methods = sorted({(r["method"], r["seed"]) for r in results["runs"]})
    assert methods == sorted((m, s) for m in ("PET", "分类头", "朴素贝叶斯") for s in (0, 1))
    for entry in results["runs"] + results["references"]:
        assert 0.0 <= entry["test"]["accuracy"] <= 1.0
    # Both neural methods train every weight of the language model (and the baseline its new head).
    pet = [r for r in results["runs"] if r["method"] == "PET"]
    head = [r for r in results["runs"] if r["method"] == "分类头"]
    assert all(r["trainable_params"] > 4_000_000 for r in pet + head)
    assert {r["method"] for r in results["references"]} == {"朴素贝叶斯（全部训练集）", "零样本", "零样本（校准后）"}

    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode != 0
    assert "--overwrite" in again.stderr


def test_sweep_ptuning_script_reduced_setting(tmp_path):
    output = tmp_path / "ptuning.json"
    command = [sys.executable, str(ROOT / "scripts" / "sweep_ptuning.py"), "--models", "tiny-gpt-zh", "--ks", "8",
               "--seeds", "0", "--no-full-train", "--validation-size", "32", "--test-size", "64", "--epochs", "1",
               "--frozen-learning-rates", "1e-3", "3e-3", "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    results = json.loads(output.read_text(encoding="utf-8"))

    methods = [run["method"] for run in results["runs"]]
    assert methods == ["P-Tuning（冻结主干）", "P-Tuning（解冻主干）", "分类头"]
    chosen = results["settings"]["learning_rates"]["P-Tuning（冻结主干）"]["tiny-gpt-zh"]
    assert set(chosen["candidates"]) == {"0.001", "0.003"}
    assert chosen["candidates"][f"{chosen['chosen']:g}"] == max(chosen["candidates"].values())
    frozen, unfrozen, head = results["runs"]
    assert frozen["learning_rate"] == chosen["chosen"]
    hidden_size = load_config("tiny-gpt-zh").hidden_size
    assert frozen["trainable_params"] == prompt_encoder_params(sweeps.PTUNING_TEMPLATES["gpt2"], hidden_size)
    assert unfrozen["trainable_params"] > frozen["trainable_params"]
    assert len(frozen["loss"]) == frozen["epochs_run"] == 1
    assert {r["method"] for r in results["references"]} == {"朴素贝叶斯（全部训练集）", "人工提示零样本",
                                                            "人工提示零样本（校准后）"}


def test_merge_results_combines_models():
    def part(model, rate):
        return {"experiment": "e", "created": f"2026-0{rate}", "minutes": 1.5, "command": model,
                "machine": {"cores": 2},
                "settings": {"models": [model], "ks": [8], "learning_rates": {"a": 1e-4, "frozen": {model: rate}}},
                "references": [{"model": "-", "method": "nb"}, {"model": model, "method": "zero"}],
                "runs": [{"model": model, "k": 8}]}

    merged = sweeps.merge_results([part("bert", 2), part("gpt", 1)])
    assert merged["settings"]["models"] == ["bert", "gpt"]
    assert merged["settings"]["learning_rates"] == {"a": 1e-4, "frozen": {"bert": 2, "gpt": 1}}
    assert [r["model"] for r in merged["references"]] == ["-", "bert", "gpt"]
    assert [r["model"] for r in merged["runs"]] == ["bert", "gpt"]
    assert merged["minutes"] == 3.0
    assert merged["created"] == "2026-01"


def test_merge_results_rejects_different_settings():
    first = {"experiment": "e", "settings": {"models": ["a"], "ks": [8]}, "references": [], "runs": []}
    second = {"experiment": "e", "settings": {"models": ["b"], "ks": [16]}, "references": [], "runs": []}
    with pytest.raises(ValueError, match="实验设置不同"):
        sweeps.merge_results([first, second])


def test_sweep_lora_script_reduced_setting(tmp_path):
    output = tmp_path / "lora.json"
    command = [sys.executable, str(ROOT / "scripts" / "sweep_lora.py"), "--seeds", "0", "--train-size", "32",
               "--validation-size", "32", "--test-size", "64", "--epochs", "1", "--configs", "4", "--one-rate",
               "--rescale-below-rank", "2", "--workers", "2", "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    results = json.loads(output.read_text(encoding="utf-8"))

    labels = [run["method"] for run in results["runs"]]
    assert labels == ["只训练分类头", "全量微调", "Wq,Wv r=1", "Wq,Wv r=2", "Wq,Wv r=4", "Wq,Wv r=8",
                      "Wq,Wv r=1（学习率 × r/8）"]
    head, full, rank1, rank2, _, rank8, rescaled = results["runs"]
    # The rate was picked at r=8; the rank-1 rerun divides it by 8, so rate x alpha / r stays the same.
    assert rescaled["learning_rate"] == pytest.approx(rank8["learning_rate"] / 8)
    assert rescaled["rank"] == 1
    assert rank1["learning_rate"] == rank8["learning_rate"]
    assert head["trainable_params"] == 256 * 2 + 2
    assert rank1["trainable_params"] - head["trainable_params"] == 6 * 2 * 1 * (256 + 256)
    assert rank2["adapter_bytes"] == 4 * rank2["trainable_params"]
    assert full["trainable_params"] > 100 * rank2["trainable_params"]
    assert set(results["settings"]["learning_rates"]) == {"LoRA", "只训练分类头", "全量微调"}
    assert results["settings"]["workers"] == 2

    # Every finished run was logged as it ended: 3 learning-rate runs, then the 4 LoRA runs not reused.
    run_log = tmp_path / "lora.runs.jsonl"
    assert len(run_log.read_text(encoding="utf-8").splitlines()) == 7
    assert results["runs_from_log"] == 0
    # A second invocation finds every run in the log and trains nothing.
    again = subprocess.run([*command, "--overwrite"], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert "读到 3 次已完成的训练" in again.stdout
    assert "读到 4 次已完成的训练" in again.stdout
    resumed = json.loads(output.read_text(encoding="utf-8"))
    assert resumed["runs_from_log"] == 7
    assert resumed["runs"] == results["runs"]


def test_sweep_ptuning_v2_script_reduced_setting(tmp_path):
    output = tmp_path / "v2.json"
    command = [sys.executable, str(ROOT / "scripts" / "sweep_ptuning_v2.py"), "--seeds", "0", "--train-size", "32",
               "--validation-size", "32", "--test-size", "48", "--epochs", "1", "--prompt-len", "4",
               "--prompt-lens", "2", "4", "--one-rate", "--output", str(output)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    results = json.loads(output.read_text(encoding="utf-8"))

    config = load_config("tiny-bert-zh")
    layers, hidden = config.num_layers, config.hidden_size
    by_label = {(run["task"], run["method"]): run for run in results["runs"]}
    assert sorted(by_label) == sorted((task, label) for task in ("sentiment", "ner") for label in (
        "P-Tuning v2", "输入层提示（P-Tuning v1 式）", "全量微调", "P-Tuning v2（重参数化）", "P-Tuning v2 P=2"))
    tags = len(data.NER_TAGS)
    # Trainable parameters: the prompts plus a linear head (2 classes, or one logit per BIO tag).
    assert by_label["sentiment", "P-Tuning v2"]["trainable_params"] == 4 * 2 * layers * hidden + hidden * 2 + 2
    assert by_label["ner", "P-Tuning v2 P=2"]["trainable_params"] == 2 * 2 * layers * hidden + hidden * tags + tags
    assert by_label["ner", "P-Tuning v2"]["test"]["overall"].keys() == {"precision", "recall", "f1", "support"}
    assert set(by_label["ner", "P-Tuning v2"]["test"]) == {"overall", "PER", "LOC", "ORG"}
    assert 0 <= by_label["sentiment", "输入层提示（P-Tuning v1 式）"]["test"]["accuracy"] <= 1
    assert by_label["ner", "全量微调"]["trainable_params"] > 50 * by_label["ner", "P-Tuning v2"]["trainable_params"]
    assert set(results["settings"]["learning_rates"]) == {"sentiment", "ner"}
    references = {(ref["task"], ref["method"]): ref for ref in results["references"]}
    assert sorted(references) == sorted([("sentiment", "朴素贝叶斯（全部训练集）"), ("sentiment", "朴素贝叶斯（同样的训练样本）"),
                                         ("ner", "CRF（同样的训练样本）")])
    crf = references["ner", "CRF（同样的训练样本）"]
    assert crf["train_size"] == 32
    # The CRF is scored on the same test sentences as the neural runs.
    assert crf["test"]["overall"]["support"] == by_label["ner", "P-Tuning v2"]["test"]["overall"]["support"]
    assert references["sentiment", "朴素贝叶斯（同样的训练样本）"]["train_size"] == 32

    bad = subprocess.run([*command[:2], "--tasks", "pos", "--output", str(tmp_path / "x.json")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert "tasks=['pos'] 无效" in bad.stderr
