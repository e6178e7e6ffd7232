"""Read and write checkpoints in the Hugging Face layout: config.json, model.safetensors, vocab.txt.

One loader serves the bundled models, any local directory in that layout (GPT-2 and BERT
families such as bert-base-chinese or uer/gpt2-chinese-cluecorpussmall) and Hugging Face Hub
ids, which are downloaded only when `download=True`. No pickle is ever read: a checkpoint
that has only `pytorch_model.bin` is opened with `torch.load(weights_only=True)` when torch
is installed. Loading never writes into the checkpoint directory.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from .models import BertForMaskedLM, GPT2LMHeadModel, ModelConfig, build_language_model
from .tokenization import ChineseTokenizer, read_vocab

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
REQUIRED_FILES = ("config.json", "vocab.txt")


def bundled_models() -> list[str]:
    """Return the names of the checkpoints shipped inside the package."""
    if not ASSETS_DIR.is_dir():
        return []
    return sorted(p.name for p in ASSETS_DIR.iterdir() if (p / "config.json").is_file())


# ---- finding a checkpoint directory ----

def resolve_checkpoint(name_or_path, download: bool = False) -> Path:
    """Return the directory of a bundled name, a local path or (with `download=True`) a hub id."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise TypeError(f"模型名必须是非空字符串或路径，收到 {name_or_path!r}。")
    name = str(name_or_path)
    if name in bundled_models():
        return ASSETS_DIR / name
    path = Path(name).expanduser()
    if path.is_dir():
        _check_directory(path)
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} 是文件而不是目录；请传入包含 config.json 的检查点目录。")
    if path.is_absolute() or name.startswith((".", "~")):
        raise FileNotFoundError(f"找不到目录 {path}；请检查路径是否写对。")
    if not download:
        raise FileNotFoundError(
            f"找不到模型 {name!r}：它不是内置模型（可选 {bundled_models()}），也不是本地目录。"
            "若它是 Hugging Face Hub 上的模型（如 'bert-base-chinese'），请在联网环境中传入 download=True。"
        )
    return _download(name)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:  # pragma: no cover - huggingface_hub is a dependency
        raise ImportError("需要 huggingface_hub 才能下载模型：pip install huggingface_hub") from error
    patterns = ["config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin"]
    try:
        local = snapshot_download(repo_id=repo_id, allow_patterns=patterns)
    except Exception as error:  # the hub client raises many types: offline, not found, gated, ...
        raise FileNotFoundError(
            f"无法从 Hugging Face Hub 下载 {repo_id!r}（{type(error).__name__}: {error}）。"
            "请检查网络连接和模型名；离线时请改用内置模型 "
            f"{bundled_models()} 或一个本地目录。"
        ) from error
    path = Path(local)
    _check_directory(path)
    return path


def _check_directory(path: Path) -> None:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    has_weights = (path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()
    if not has_weights:
        missing.append("model.safetensors")
    if missing:
        present = sorted(p.name for p in path.iterdir())[:10]
        raise FileNotFoundError(
            f"检查点目录 {path} 缺少 {missing}（目录中有 {present}）。"
            "Hugging Face 格式的检查点需要 config.json、model.safetensors 和 vocab.txt。"
        )


# ---- configs and tokenizers ----

def load_config(name_or_path, download: bool = False) -> ModelConfig:
    path = resolve_checkpoint(name_or_path, download=download)
    try:
        hf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path / 'config.json'} 不是合法的 JSON（{error}）。") from error
    return ModelConfig.from_hf_dict(hf)


def load_tokenizer(name_or_path, download: bool = False) -> ChineseTokenizer:
    """Load the character tokenizer of a checkpoint (its vocab.txt, and max_positions from config.json)."""
    path = resolve_checkpoint(name_or_path, download=download)
    config = load_config(path)
    do_lower_case = True
    tokenizer_config = path / "tokenizer_config.json"
    if tokenizer_config.is_file():
        do_lower_case = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("do_lower_case", True)
    return ChineseTokenizer(read_vocab(path / "vocab.txt"), model_max_length=config.max_positions,
                            do_lower_case=do_lower_case)


# ---- tensor names ----

def _dense(hf_prefix, dense):
    """Pairs (HF name, variable, transpose) for a torch nn.Linear stored as [out, in]."""
    return [(f"{hf_prefix}.weight", dense.kernel, True), (f"{hf_prefix}.bias", dense.bias, False)]


def _norm(hf_prefix, norm):
    return [(f"{hf_prefix}.weight", norm.gamma, False), (f"{hf_prefix}.bias", norm.beta, False)]


def _bert_pairs(model: BertForMaskedLM, prefix="bert."):
    bert = model.backbone
    pairs = [
        (f"{prefix}embeddings.word_embeddings.weight", bert.token_embedding.embeddings, False),
        (f"{prefix}embeddings.position_embeddings.weight", bert.position_embedding.embeddings, False),
        (f"{prefix}embeddings.token_type_embeddings.weight", bert.token_type_embedding.embeddings, False),
    ]
    pairs += _norm(f"{prefix}embeddings.LayerNorm", bert.embedding_norm)
    for i, layer in enumerate(bert.encoder_layers):
        hf = f"{prefix}encoder.layer.{i}."
        pairs += _dense(hf + "attention.self.query", layer.attention.query)
        pairs += _dense(hf + "attention.self.key", layer.attention.key)
        pairs += _dense(hf + "attention.self.value", layer.attention.value)
        pairs += _dense(hf + "attention.output.dense", layer.attention.output_dense)
        pairs += _norm(hf + "attention.output.LayerNorm", layer.attention_norm)
        pairs += _dense(hf + "intermediate.dense", layer.ffn_intermediate)
        pairs += _dense(hf + "output.dense", layer.ffn_output)
        pairs += _norm(hf + "output.LayerNorm", layer.output_norm)
    pairs += _dense(f"{prefix}pooler.dense", bert.pooler)
    return pairs


def _bert_head_pairs(model: BertForMaskedLM):
    pairs = _dense("cls.predictions.transform.dense", model.mlm_dense)
    pairs += _norm("cls.predictions.transform.LayerNorm", model.mlm_norm)
    pairs.append(("cls.predictions.bias", model.mlm_bias, False))
    return pairs


def _gpt2_pairs(model: GPT2LMHeadModel, prefix="transformer."):
    """Pairs for every GPT-2 tensor except the fused c_attn, which `_assign_fused_attention` splits.

    GPT-2 stores its projections as Conv1D weights `[in, out]`, the same layout as a Keras
    Dense kernel, so nothing is transposed.
    """
    gpt = model.backbone
    pairs = [
        (f"{prefix}wte.weight", gpt.token_embedding.embeddings, False),
        (f"{prefix}wpe.weight", gpt.position_embedding.embeddings, False),
    ]
    for i, block in enumerate(gpt.blocks):
        hf = f"{prefix}h.{i}."
        pairs += _norm(hf + "ln_1", block.ln_1)
        pairs += [(hf + "attn.c_proj.weight", block.attention.output_dense.kernel, False),
                  (hf + "attn.c_proj.bias", block.attention.output_dense.bias, False)]
        pairs += _norm(hf + "ln_2", block.ln_2)
        pairs += [(hf + "mlp.c_fc.weight", block.ffn_intermediate.kernel, False),
                  (hf + "mlp.c_fc.bias", block.ffn_intermediate.bias, False),
                  (hf + "mlp.c_proj.weight", block.ffn_output.kernel, False),
                  (hf + "mlp.c_proj.bias", block.ffn_output.bias, False)]
    pairs += _norm(f"{prefix}ln_f", gpt.ln_f)
    return pairs


# ---- loading ----

def _read_state_dict(path: Path) -> dict:
    safetensors_file = path / "model.safetensors"
    if safetensors_file.is_file():
        return load_file(str(safetensors_file))
    try:
        import torch
    except ImportError as error:
        raise FileNotFoundError(
            f"{path} 只有 pytorch_model.bin，没有 model.safetensors。出于安全考虑本项目不用 pickle 读取权重；"
            "请安装 torch（将以 torch.load(weights_only=True) 读取），或先把权重转换为 safetensors。"
        ) from error
    state = torch.load(str(path / "pytorch_model.bin"), map_location="cpu", weights_only=True)
    return {name: tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
            for name, tensor in state.items()}


def _rename_legacy(state: dict) -> dict:
    """Rename old TF-converted names (LayerNorm.gamma / beta) to weight / bias, as transformers does."""
    renamed = {}
    for name, value in state.items():
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        renamed[name] = value
    return renamed


def _assign(pairs, state, path):
    missing = [hf for hf, _, _ in pairs if hf not in state]
    if missing:
        raise ValueError(f"{path} 的权重缺少 {len(missing)} 个张量，例如 {missing[:3]}；这个检查点与 config.json 不一致。")
    for hf, variable, transpose in pairs:
        value = np.asarray(state[hf])
        if transpose:
            value = value.T
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"张量 {hf} 的形状 {tuple(value.shape)} 与模型需要的 {tuple(variable.shape)} 不符；"
                "请检查 config.json（例如 vocab_size、hidden_size）是否与权重匹配。"
            )
        variable.assign(value.astype(variable.dtype))


def _strip_prefix(state: dict, prefix: str) -> str:
    """Return the prefix the checkpoint uses ("bert." / "transformer." or none)."""
    return prefix if any(name.startswith(prefix) for name in state) else ""


def load_llm(name_or_path, download: bool = False):
    """Load a pretrained GPT-2 (`GPT2LMHeadModel`) or BERT (`BertForMaskedLM`) from a checkpoint.

    `name_or_path` is a bundled name (see `bundled_models()`), a local directory in the
    Hugging Face layout, or, with `download=True`, a Hugging Face Hub id.
    """
    path = resolve_checkpoint(name_or_path, download=download)
    config = load_config(path)
    vocab = read_vocab(path / "vocab.txt")
    if len(vocab) > config.vocab_size:
        raise ValueError(
            f"vocab.txt 有 {len(vocab)} 个 token，多于 config.json 的 vocab_size={config.vocab_size}；"
            "词表与模型不匹配，请使用与权重一起发布的 vocab.txt。"
        )
    state = _rename_legacy(_read_state_dict(path))
    model = build_language_model(config)
    if config.model_type == "gpt2":
        prefix = _strip_prefix(state, "transformer.")
        embedding_name = f"{prefix}wte.weight"
        _check_vocab_rows(state, embedding_name, config, path)
        _assign(_gpt2_pairs(model, prefix), state, path)
        _assign_fused_attention(model, state, prefix, path)
    else:
        prefix = _strip_prefix(state, "bert.")
        _check_vocab_rows(state, f"{prefix}embeddings.word_embeddings.weight", config, path)
        pairs = _bert_pairs(model, prefix)
        if f"{prefix}pooler.dense.weight" not in state:
            pairs = [p for p in pairs if "pooler" not in p[0]]
            warnings.warn(f"{path} 没有 pooler 权重，pooler 保持随机初始化。", stacklevel=2)
        _assign(pairs, state, path)
        head = _bert_head_pairs(model)
        if "cls.predictions.bias" not in state and "cls.predictions.decoder.bias" in state:
            state["cls.predictions.bias"] = state["cls.predictions.decoder.bias"]
        if all(hf in state for hf, _, _ in head):
            _assign(head, state, path)
        else:
            warnings.warn(
                f"{path} 没有 MLM 头（cls.predictions.*），它可能是只含编码器的 BertModel；"
                "MLM 头保持随机初始化，填空结果没有意义，但编码器输出可以正常使用。",
                stacklevel=2,
            )
    model.checkpoint_path = str(path)
    return model


def _check_vocab_rows(state, name, config, path):
    if name in state and state[name].shape[0] != config.vocab_size:
        raise ValueError(
            f"{path} 的词嵌入有 {state[name].shape[0]} 行，而 config.json 的 vocab_size={config.vocab_size}；"
            "请修正 config.json 或换用配套的权重。"
        )


def _assign_fused_attention(model, state, prefix, path):
    """Split GPT-2's fused c_attn `[H, 3H]` into the separate query, key and value Dense layers."""
    hidden = model.config.hidden_size
    for i, block in enumerate(model.backbone.blocks):
        name = f"{prefix}h.{i}.attn.c_attn"
        if f"{name}.weight" not in state:
            raise ValueError(f"{path} 缺少张量 {name}.weight；这不是完整的 GPT-2 检查点。")
        weight = np.asarray(state[f"{name}.weight"])  # [H, 3H]: query | key | value along the output axis
        bias = np.asarray(state[f"{name}.bias"])
        if weight.shape != (hidden, 3 * hidden):
            raise ValueError(f"{name}.weight 的形状 {weight.shape} 应为 {(hidden, 3 * hidden)}；请检查 config.json。")
        attention = block.attention
        for part, dense in enumerate((attention.query, attention.key, attention.value)):
            columns = slice(part * hidden, (part + 1) * hidden)
            dense.kernel.assign(weight[:, columns].astype(dense.kernel.dtype))
            dense.bias.assign(bias[columns].astype(dense.bias.dtype))


# ---- saving ----

def model_state_dict(model) -> dict:
    """Return the model's weights as numpy arrays under Hugging Face tensor names."""
    if isinstance(model, GPT2LMHeadModel):
        state = {hf: _to_numpy(var, transpose) for hf, var, transpose in _gpt2_pairs(model)}
        for i, block in enumerate(model.backbone.blocks):
            attention = block.attention
            dense_layers = (attention.query, attention.key, attention.value)
            state[f"transformer.h.{i}.attn.c_attn.weight"] = np.concatenate(
                [np.asarray(d.kernel) for d in dense_layers], axis=1)
            state[f"transformer.h.{i}.attn.c_attn.bias"] = np.concatenate(
                [np.asarray(d.bias) for d in dense_layers], axis=0)
        return state
    if isinstance(model, BertForMaskedLM):
        pairs = _bert_pairs(model) + _bert_head_pairs(model)
        return {hf: _to_numpy(var, transpose) for hf, var, transpose in pairs}
    raise TypeError(f"save_llm 只能保存 GPT2LMHeadModel 或 BertForMaskedLM，收到 {type(model).__name__}。")


def _to_numpy(variable, transpose):
    value = np.asarray(variable)
    return np.ascontiguousarray(value.T if transpose else value)


def save_llm(model, tokenizer: ChineseTokenizer, directory, overwrite: bool = False) -> Path:
    """Write config.json, model.safetensors and vocab.txt in the Hugging Face layout.

    An existing non-empty directory is kept unless `overwrite=True`.
    """
    if not isinstance(model, (GPT2LMHeadModel, BertForMaskedLM)):
        raise TypeError(f"save_llm 的第一个参数应是 load_llm 返回的模型，收到 {type(model).__name__}；调用方式：save_llm(model, tokenizer, directory)。")
    if not isinstance(tokenizer, ChineseTokenizer):
        raise TypeError(f"save_llm 的第二个参数应是分词器（ChineseTokenizer），收到 {type(tokenizer).__name__}；调用方式：save_llm(model, tokenizer, directory)。")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} 已存在且是文件；请换一个目录名。")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(
            f"目录 {directory} 已存在且不为空；为避免覆盖已有检查点，请换一个目录，或传入 overwrite=True。"
        )
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"分词器有 {tokenizer.vocab_size} 个 token，多于模型的 vocab_size={model.config.vocab_size}；"
            "请保存与模型配套的分词器。"
        )
    state = model_state_dict(model)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_hf_dict()
    if config["model_type"] == "gpt2":
        # Without these transformers falls back to GPT-2's English ids (50256), outside this vocabulary.
        config.setdefault("bos_token_id", tokenizer.cls_id)
        config.setdefault("eos_token_id", tokenizer.sep_id)
    (directory / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    weights_path = directory / "model.safetensors"
    save_file(state, str(weights_path), metadata={"format": "pt"})
    weights_path.chmod(0o644)  # safetensors creates the file readable by its owner only
    tokenizer.save_vocab(directory / "vocab.txt")
    # Tells transformers' AutoTokenizer to read vocab.txt with BertTokenizer, also for GPT-2 models.
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.do_lower_case,
                        "model_max_length": tokenizer.model_max_length}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8")
    return directory
