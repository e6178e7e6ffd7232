import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import max_abs_diff, small_config
from peft_lessons.checkpoints import (
    bundled_models,
    load_config,
    load_llm,
    load_tokenizer,
    model_state_dict,
    save_llm,
)
from peft_lessons.models import BertForMaskedLM, GPT2LMHeadModel, build_language_model

BUNDLED = ("tiny-gpt-zh", "tiny-bert-zh")


@pytest.fixture(params=["gpt2", "bert"])
def saved_checkpoint(request, small_tokenizer, tmp_path_factory):
    model = build_language_model(small_config(request.param, small_tokenizer))
    directory = tmp_path_factory.mktemp(request.param) / "checkpoint"
    save_llm(model, small_tokenizer, directory)
    return model, directory


def _snapshot(directory):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


def test_save_writes_hugging_face_layout(saved_checkpoint):
    _, directory = saved_checkpoint
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]


def test_load_save_load_is_exact(saved_checkpoint, small_tokenizer, tmp_path):
    model, directory = saved_checkpoint
    first = load_llm(directory)
    save_llm(first, load_tokenizer(directory), tmp_path / "again")
    second = load_llm(tmp_path / "again")
    original, reloaded = model_state_dict(model), model_state_dict(second)
    assert original.keys() == reloaded.keys()
    for name in original:
        assert np.array_equal(original[name], reloaded[name]), name
    assert (tmp_path / "again" / "vocab.txt").read_text() == (directory / "vocab.txt").read_text()
    batch = small_tokenizer.encode_batch(["今天天气很好"], max_length=12)
    assert max_abs_diff(model(batch), second(batch)) == 0.0


def test_gpt2_attention_saved_as_fused_c_attn(small_tokenizer, tmp_path):
    model = GPT2LMHeadModel(small_config("gpt2", small_tokenizer))
    save_llm(model, small_tokenizer, tmp_path / "gpt")
    state = load_file(str(tmp_path / "gpt" / "model.safetensors"))
    attention = model.backbone.blocks[0].attention
    fused = np.concatenate([np.asarray(d.kernel) for d in (attention.query, attention.key, attention.value)], axis=1)
    assert np.array_equal(state["transformer.h.0.attn.c_attn.weight"], fused)
    assert "transformer.h.0.attn.query.weight" not in state
    assert "lm_head.weight" not in state  # tied to wte, as transformers saves it


def test_bert_saved_with_hf_names(small_tokenizer, tmp_path):
    model = BertForMaskedLM(small_config("bert", small_tokenizer))
    save_llm(model, small_tokenizer, tmp_path / "bert")
    state = load_file(str(tmp_path / "bert" / "model.safetensors"))
    kernel = np.asarray(model.backbone.encoder_layers[1].attention.query.kernel)
    assert np.array_equal(state["bert.encoder.layer.1.attention.self.query.weight"], kernel.T)
    assert "cls.predictions.transform.LayerNorm.weight" in state
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert config["model_type"] == "bert"


def test_loading_never_writes_into_checkpoint(saved_checkpoint):
    _, directory = saved_checkpoint
    before = _snapshot(directory)
    os.chmod(directory, 0o555)
    try:
        load_llm(directory)
        load_tokenizer(directory)
    finally:
        os.chmod(directory, 0o755)
    assert _snapshot(directory) == before


def test_save_refuses_to_overwrite(saved_checkpoint, small_tokenizer):
    model, directory = saved_checkpoint
    before = _snapshot(directory)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_llm(model, small_tokenizer, directory)
    assert _snapshot(directory) == before
    save_llm(model, small_tokenizer, directory, overwrite=True)


def test_legacy_gamma_beta_names_load(small_tokenizer, tmp_path):
    model = BertForMaskedLM(small_config("bert", small_tokenizer))
    save_llm(model, small_tokenizer, tmp_path / "bert")
    path = tmp_path / "bert" / "model.safetensors"
    state = load_file(str(path))
    renamed = {}
    for name, value in state.items():
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        renamed[name] = value
    save_file(renamed, str(path))
    batch = small_tokenizer.encode_batch(["你好"], max_length=8)
    assert max_abs_diff(model(batch), load_llm(tmp_path / "bert")(batch)) == 0.0


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "vocab.txt"])
def test_missing_file_named_in_error(saved_checkpoint, tmp_path, missing):
    _, directory = saved_checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    (copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        load_llm(copy)


def test_pytorch_bin_without_torch_explained(saved_checkpoint, tmp_path):
    pytest.importorskip("safetensors")
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed, so pytorch_model.bin would be read with weights_only=True")
    except ImportError:
        pass
    _, directory = saved_checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="不用 pickle"):
        load_llm(copy)


def test_unsupported_model_type_rejected(saved_checkpoint, tmp_path):
    _, directory = saved_checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    config = json.loads((copy / "config.json").read_text())
    config["model_type"] = "t5"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type='t5'"):
        load_llm(copy)


def test_vocab_size_mismatch_rejected(saved_checkpoint, tmp_path):
    _, directory = saved_checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    config = json.loads((copy / "config.json").read_text())
    config["vocab_size"] += 7
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="词嵌入有"):
        load_llm(copy)


def test_longer_vocab_file_rejected(saved_checkpoint, tmp_path):
    _, directory = saved_checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    with open(copy / "vocab.txt", "a", encoding="utf-8") as handle:
        handle.write("多余\n")
    with pytest.raises(ValueError, match="vocab.txt 有"):
        load_llm(copy)


def test_unknown_name_suggests_download():
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_llm("no-such-model-anywhere")


def test_hub_download_offline_explained(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="无法从 Hugging Face Hub 下载 'someone/no-such-model'"):
        load_llm("someone/no-such-model", download=True)


def test_bad_name_type_rejected():
    with pytest.raises(TypeError, match="模型名"):
        load_llm(42)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_loads_offline(name):
    assert name in bundled_models()
    model = load_llm(name)
    tokenizer = load_tokenizer(name)
    config = load_config(name)
    assert config.vocab_size == tokenizer.vocab_size
    assert model.count_params() <= 10_000_000
    batch = tokenizer.encode_batch(["这本书写得很好。"], max_length=16)
    logits = np.asarray(model(batch))
    assert logits.shape == (1, 16, config.vocab_size)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_is_small(name):
    from peft_lessons.checkpoints import ASSETS_DIR
    assert (ASSETS_DIR / name / "model.safetensors").stat().st_size <= 25_000_000


def test_missing_local_path_named_in_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="找不到目录"):
        load_llm(tmp_path / "missing")


def test_save_rejects_swapped_arguments(saved_checkpoint, small_tokenizer, tmp_path):
    model, _ = saved_checkpoint
    with pytest.raises(TypeError, match="save_llm"):
        save_llm(small_tokenizer, model, tmp_path / "swapped")
    assert not (tmp_path / "swapped").exists()
