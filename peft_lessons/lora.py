"""LoRA: trainable low-rank updates beside frozen Dense layers.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685)
keeps a pretrained Dense layer with kernel W0 `[d_in, d_out]` and bias b frozen and learns
two small matrices A `[d_in, r]` and B `[r, d_out]`:

    h = x W0 + b + (alpha / r) * dropout(x) A B

This is the paper's `h = W0 x + B A x` in Keras' row-vector layout, so the paper's A
`[r, d_in]` and B `[d_out, r]` are the transposes of `LoRADense.lora_a` and `lora_b`. The
layout is the one Keras 3 uses for `Dense.enable_lora` (`lora_kernel_a` `[d_in, r]`,
`lora_kernel_b` `[r, d_out]`, scaled by `lora_alpha / rank`). B starts at zero, so a freshly
wrapped model computes exactly what the base model computes.

Target names select Dense layers in every Transformer layer of the backbone:

- "query", "key", "value": the attention projections (`MultiHeadAttention.query` etc.).
- "output": the attention output projection (`MultiHeadAttention.output_dense`, layer name "output").
- "ffn_intermediate", "ffn_output": the two Dense layers of the feed-forward block.

A wrapped layer's path is "<layer>/attention/<target>" for the attention targets and
"<layer>/<target>" for the feed-forward ones, with <layer> being `block_i` for GPT-2 and
`layer_i` for BERT. An adapter (the LoRA matrices and the task head) is saved on its own
with `save_adapter` and loaded onto a model with the same base weights with `load_adapter`.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops
from safetensors.numpy import load_file, save_file

from .models import GPT2Model
from .models.heads import SequenceClassifier, _backbone_of
from .prompting import (
    _classifier_probabilities,
    _few_shot_splits,
    _resolve_model_and_tokenizer,
    evaluate_probabilities,
)
from .training import count_params, parameter_report, set_seed, train_classifier

TARGETS = ("query", "key", "value", "output", "ffn_intermediate", "ffn_output")
ATTENTION_TARGETS = ("query", "key", "value", "output")
INITS = ("gaussian", "kaiming")

ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_FORMAT_VERSION = 1

# Base-model settings that `save_adapter` records and `load_adapter` requires to be equal.
BASE_CONFIG_KEYS = ("model_type", "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                    "max_positions")

# Learning rate of `train_lora_classifier`: a starting point for this project's small models, not tuned.
DEFAULT_LEARNING_RATE = 5e-4


# ---------------------------------------------------------------------------
# Checking options
# ---------------------------------------------------------------------------


def _check_rank(rank, d_in: int, d_out: int, where: str) -> int:
    limit = min(d_in, d_out)
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 1 <= rank <= limit:
        raise ValueError(
            f"rank 必须是 1 到 min(d_in, d_out)={limit} 之间的整数（{where} 的 kernel 形状为 [{d_in}, {d_out}]），"
            f"收到 {rank!r}；常用的值是 4、8 或 16。"
        )
    return int(rank)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha 必须是正数（LoRA 更新乘以 alpha / rank），收到 {alpha!r}；例如 rank=8 时可用 alpha=16。")
    return float(alpha)


def _check_dropout(dropout) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout 必须在 [0, 1) 之间，收到 {dropout!r}；不需要 dropout 时请传 0.0。")
    return float(dropout)


def _check_init(init) -> str:
    if init not in INITS:
        raise ValueError(
            f"init 只能是 {INITS} 之一，收到 {init!r}；'gaussian' 从 N(0, (1/rank)^2) 初始化 A，"
            "'kaiming' 从 U(-1/sqrt(d_in), 1/sqrt(d_in)) 初始化 A，两者都把 B 设为 0。"
        )
    return init


def _check_targets(targets) -> tuple[str, ...]:
    """Return the target names in the order of TARGETS, with duplicates removed."""
    if isinstance(targets, str):
        targets = (targets,)
    try:
        names = list(targets)
    except TypeError:
        raise TypeError(f"targets 需要目标层名的列表或元组，收到 {type(targets).__name__}：{targets!r}；例如 ('query', 'value')。") from None
    if not names:
        raise ValueError(f"targets 为空；请至少选择一个目标层，可选 {TARGETS}。")
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise ValueError(
            f"targets 中的 {unknown} 没有匹配到任何层。可用的目标层名是 {TARGETS}："
            "'output' 指注意力的输出投影，'ffn_intermediate' 和 'ffn_output' 指前馈网络的两个 Dense 层。"
        )
    return tuple(name for name in TARGETS if name in names)


def _check_base_dense(base) -> None:
    if isinstance(base, LoRADense):
        raise ValueError(f"层 {base.name!r} 已经是 LoRADense；同一层不能再套一层 LoRA。")
    if not isinstance(base, keras.layers.Dense):
        raise TypeError(f"LoRADense 只能包装 keras.layers.Dense，收到 {type(base).__name__}。")
    if not base.built:
        raise ValueError(f"Dense 层 {base.name!r} 还没有构建（没有 kernel）；请先调用 layer.build(input_shape)。")
    if base.lora_enabled:
        raise ValueError(
            f"Dense 层 {base.name!r} 已经用 Keras 自带的 enable_lora 启用了 LoRA；"
            "请只用其中一种方式：不要对它调用 enable_lora，或者不要再用 LoRADense 包装它。"
        )
    if base.quantization_mode is not None:
        raise ValueError(f"Dense 层 {base.name!r} 已量化（{base.quantization_mode}）；LoRADense 只支持未量化的 Dense。")


# ---------------------------------------------------------------------------
# The LoRA layer
# ---------------------------------------------------------------------------


class LoRADense(keras.layers.Layer):
    """A frozen Dense layer plus a trainable low-rank update: `activation(x W0 + b + (alpha / r) * dropout(x) A B)`.

    `base` must be a built `keras.layers.Dense`. Its kernel W0 and bias b are set
    non-trainable, and its activation is applied after the update is added, so wrapping a
    Dense with an activation (such as `ffn_intermediate`) adapts the pre-activation output.

    A (`lora_a`, `[d_in, r]`) and B (`lora_b`, `[r, d_out]`) are float32 under every dtype
    policy. Keras 3.15 does the same for the weights of `Dense.enable_lora`, even under a
    "bfloat16" policy (checked by running it). The layer computes in the base layer's compute
    dtype. B starts at zero. A starts from

    - init="gaussian": N(0, (1/r)^2), a Gaussian with std 1/r like HF PEFT's
      `init_lora_weights="gaussian"`.
    - init="kaiming": U(-1/sqrt(d_in), 1/sqrt(d_in)). This is Kaiming-uniform with negative
      slope a = sqrt(5), because its bound gain * sqrt(3 / d_in) with gain = sqrt(2 / (1 + a^2))
      equals 1 / sqrt(d_in). HF PEFT's LoRA guide (huggingface.co/docs/peft, developer_guides/lora)
      names Kaiming-uniform as its default for A.

    Dropout with rate `dropout` acts on the input of the LoRA branch only, during training.
    """

    def __init__(self, base, rank: int = 8, alpha: float = 16, dropout: float = 0.0, init: str = "gaussian",
                 **kwargs):
        _check_base_dense(base)
        d_in, d_out = (int(size) for size in base.kernel.shape)
        rank = _check_rank(rank, d_in, d_out, f"Dense 层 {base.name!r}")
        alpha = _check_alpha(alpha)
        dropout = _check_dropout(dropout)
        init = _check_init(init)
        kwargs.setdefault("name", f"{base.name}_lora")
        kwargs.setdefault("dtype", base.dtype_policy)
        super().__init__(**kwargs)

        self.base = base
        self.base.trainable = False
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.init = init
        self.lora_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

        if init == "gaussian":
            a_initializer = keras.initializers.RandomNormal(stddev=1.0 / rank)
        else:
            bound = 1.0 / math.sqrt(d_in)
            a_initializer = keras.initializers.RandomUniform(minval=-bound, maxval=bound)
        self.lora_a = self.add_weight(shape=(d_in, rank), initializer=a_initializer, dtype="float32", name="lora_a")
        self.lora_b = self.add_weight(shape=(rank, d_out), initializer="zeros", dtype="float32", name="lora_b")
        self.built = True

    @property
    def scale(self) -> float:
        """The factor alpha / r that multiplies the low-rank update."""
        return self.alpha / self.rank

    @property
    def units(self) -> int:
        return self.base.units

    def delta_kernel(self):
        """Return the update (alpha / r) A B `[d_in, d_out]` in float32, the change to the base kernel."""
        return self.scale * ops.matmul(self.lora_a, self.lora_b)

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, ops.cast(self.base.kernel, inputs.dtype))
        if self.base.use_bias:
            outputs = outputs + ops.cast(self.base.bias, inputs.dtype)
        lora_inputs = self.lora_dropout(inputs, training=training)
        low_rank = ops.matmul(lora_inputs, ops.cast(self.lora_a, inputs.dtype))  # [..., r]
        update = ops.matmul(low_rank, ops.cast(self.lora_b, inputs.dtype))  # [..., d_out]
        return self.base.activation(outputs + self.scale * update)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.base.units,)


# ---------------------------------------------------------------------------
# Finding and wrapping target layers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoRAConfig:
    """The LoRA settings of a model: what `apply_lora` was called with, after validation."""

    rank: int
    alpha: float
    dropout: float
    init: str
    targets: tuple[str, ...]
    trainable_head: bool

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class LoRAInfo:
    """A model's LoRA settings, the paths of its wrapped layers and whether the update is merged into the kernels."""

    config: LoRAConfig
    paths: tuple[str, ...]
    merged: bool


@dataclass
class _Site:
    """One target Dense layer: where it sits (`owner.<attribute>`), the original Dense and its wrapper."""

    path: str
    owner: keras.layers.Layer
    attribute: str
    base: keras.layers.Dense
    wrapper: LoRADense | None = None


class _LoRAState:
    """Bookkeeping stored on the backbone as `_lora_state`.

    It is a plain object on purpose: Keras tracks layers kept in lists or dicts on a layer,
    and tracked wrappers would stay in `model.weights` after `merge_lora` detaches them.
    """

    def __init__(self, config: LoRAConfig, sites: list[_Site]):
        self.config = config
        self.sites = sites
        self.merged = False


def _transformer_layers(backbone) -> list:
    return list(backbone.blocks) if isinstance(backbone, GPT2Model) else list(backbone.encoder_layers)


def _find_sites(backbone, targets) -> list[_Site]:
    """Locate the target Dense layers of every Transformer layer, in layer order."""
    sites = []
    for layer in _transformer_layers(backbone):
        for target in targets:
            if target in ATTENTION_TARGETS:
                owner = layer.attention
                attribute = "output_dense" if target == "output" else target
                path = f"{layer.name}/attention/{target}"
            else:
                owner, attribute, path = layer, target, f"{layer.name}/{target}"
            sites.append(_Site(path=path, owner=owner, attribute=attribute, base=getattr(owner, attribute)))
    return sites


def _swap_sublayer(owner, attribute: str, new_layer) -> None:
    """Put `new_layer` in place of the sub-layer `owner.<attribute>`.

    Keras 3 locks a built layer against new sub-layers. Replacing the tracked entry keeps the
    old layer's place in `owner._layers`, so the order of `model.weights` is unchanged. This
    uses Keras' private Tracker API, checked with Keras 3.15.
    """
    old_layer = getattr(owner, attribute)
    owner._tracker.replace_tracked_value("layers", old_layer, new_layer)
    setattr(owner, attribute, new_layer)


def _reset_compiled_functions(*models) -> None:
    """Drop the train, test and predict functions that Keras traced and cached with the old sub-layers.

    Without this, `model.predict` after `merge_lora` would still run the LoRA wrappers on top
    of the merged kernels and add the update twice.
    """
    # NOTE: only the models passed here are reset. Another Keras model that contains the same
    # backbone (such as the language model object) keeps its cached functions until it is compiled again.
    for model in models:
        for name in ("train_function", "test_function", "predict_function"):
            if getattr(model, name, None) is not None:
                setattr(model, name, None)


def _lora_state(backbone) -> _LoRAState | None:
    return getattr(backbone, "_lora_state", None)


def _require_lora(model) -> tuple[object, _LoRAState]:
    backbone = _backbone_of(model)
    state = _lora_state(backbone)
    if state is None:
        raise ValueError(f"模型 {model.name!r} 上没有 LoRA；请先调用 apply_lora(model, ...) 或 load_adapter(model, directory)。")
    return backbone, state


def _head_of(model):
    """Return the task head (`classifier` of SequenceClassifier / TokenClassifier), or None."""
    head = getattr(model, "classifier", None)
    return head if isinstance(head, keras.layers.Dense) else None


def _freeze_all_but_lora(model, state: _LoRAState) -> None:
    """Make only the LoRA matrices and, with `trainable_head`, the task head trainable.

    Flags are set on the variables, as Keras' own `enable_lora` does for the kernel, because
    `trainable = False` on a layer would also freeze the LoRA matrices inside it.
    """
    model.trainable = True
    keep = [weight for site in state.sites for weight in (site.wrapper.lora_a, site.wrapper.lora_b)]
    head = _head_of(model)
    if state.config.trainable_head and head is not None:
        keep += head.weights
    keep_ids = {id(weight) for weight in keep}
    for weight in model.weights:
        weight.trainable = id(weight) in keep_ids
    for site in state.sites:
        site.base.trainable = False  # `model.trainable = True` above set the layer flag back to True


def apply_lora(model, targets=("query", "value"), rank: int = 8, alpha: float = 16, dropout: float = 0.0,
               init: str = "gaussian", trainable_head: bool = True) -> LoRAInfo:
    """Wrap the target Dense layers of every Transformer layer in `LoRADense`, in place.

    `model` is a SequenceClassifier, TokenClassifier, language model or bare backbone. Every
    weight becomes non-trainable except the LoRA matrices and, if `trainable_head`, the
    `classifier` head, so BERT's pooler stays frozen.

    Raises ValueError for unknown target names, a rank outside 1..min(d_in, d_out) of any
    target, and a model that already has LoRA, because one model has one LoRA configuration.
    A model compiled before must be compiled again before `fit`, because its optimizer was
    built for the old trainable weights. Returns the configuration and the paths of the
    wrapped layers.
    """
    backbone = _backbone_of(model)
    targets = _check_targets(targets)
    alpha = _check_alpha(alpha)
    dropout = _check_dropout(dropout)
    init = _check_init(init)
    state = _lora_state(backbone)
    if state is not None:
        overlap = [site.path for site in state.sites if site.path.rsplit("/", 1)[-1] in targets]
        detail = f"其中 {overlap[:3]} 等层已经被包装" if overlap else f"已包装 {len(state.sites)} 层"
        raise ValueError(
            f"模型已经应用过 LoRA（targets={state.config.targets}，rank={state.config.rank}），{detail}；"
            "同一层不能包装两次，一个模型也只保存一组 LoRA 设置。要换设置，请重新加载模型再调用 apply_lora。"
        )

    sites = _find_sites(backbone, targets)
    for site in sites:
        if isinstance(site.base, LoRADense):
            raise ValueError(f"层 {site.path} 已经是 LoRADense；同一层不能包装两次。")
        _check_base_dense(site.base)
        d_in, d_out = (int(size) for size in site.base.kernel.shape)
        _check_rank(rank, d_in, d_out, site.path)

    config = LoRAConfig(rank=int(rank), alpha=alpha, dropout=dropout, init=init, targets=targets,
                        trainable_head=bool(trainable_head))
    for site in sites:
        site.wrapper = LoRADense(site.base, rank=config.rank, alpha=alpha, dropout=dropout, init=init)
        _swap_sublayer(site.owner, site.attribute, site.wrapper)
    state = _LoRAState(config, sites)
    backbone._lora_state = state
    _freeze_all_but_lora(model, state)
    _reset_compiled_functions(model, backbone)
    return lora_info(model)


def lora_info(model) -> LoRAInfo | None:
    """Return the LoRA configuration, wrapped paths and merge status of a model, or None without LoRA."""
    state = _lora_state(_backbone_of(model))
    if state is None:
        return None
    return LoRAInfo(config=state.config, paths=tuple(site.path for site in state.sites), merged=state.merged)


def lora_layers(model) -> dict:
    """Return the LoRADense wrappers by path, also while they are merged and detached from the model."""
    _, state = _require_lora(model)
    return {site.path: site.wrapper for site in state.sites}


# ---------------------------------------------------------------------------
# Parameter counts and adapter size
# ---------------------------------------------------------------------------


def count_lora_params(model) -> int:
    """Count the weights of all LoRA matrices: r * (d_in + d_out) per wrapped layer."""
    return count_params([weight for wrapper in lora_layers(model).values()
                         for weight in (wrapper.lora_a, wrapper.lora_b)])


def adapter_tensors(model) -> dict:
    """Return the tensors that `save_adapter` writes, as float32 arrays by name.

    Names are "<path>/lora_a", "<path>/lora_b" and, when the model has a task head,
    "classifier/kernel" and "classifier/bias". The head is always included, even when it is
    frozen, because a fresh model's head would otherwise be random.
    """
    tensors = {}
    for path, wrapper in lora_layers(model).items():
        tensors[f"{path}/lora_a"] = np.asarray(wrapper.lora_a, dtype=np.float32)
        tensors[f"{path}/lora_b"] = np.asarray(wrapper.lora_b, dtype=np.float32)
    head = _head_of(model)
    if head is not None:
        tensors["classifier/kernel"] = np.asarray(head.kernel, dtype=np.float32)
        if head.use_bias:
            tensors["classifier/bias"] = np.asarray(head.bias, dtype=np.float32)
    return tensors


def adapter_size_bytes(model) -> int:
    """Count the bytes of the adapter tensors (float32).

    The file `save_adapter` writes is larger by the safetensors header, a JSON index of about
    90 bytes per tensor (measured with safetensors 0.8.0).
    """
    return int(sum(array.nbytes for array in adapter_tensors(model).values()))


def target_shapes(config) -> dict:
    """Return the kernel shape `(d_in, d_out)` of each LoRA target in one Transformer layer of `config`."""
    hidden, intermediate = config.hidden_size, config.intermediate_size
    shapes = {name: (hidden, hidden) for name in ATTENTION_TARGETS}
    shapes.update(ffn_intermediate=(hidden, intermediate), ffn_output=(intermediate, hidden))
    return shapes


def lora_summary(language_model, targets=("query", "value"), rank: int = 8, num_labels: int = 2) -> dict:
    """Count what `apply_lora` would add to a sequence classifier on `language_model`, without building it.

    Each target in each of the L layers gets `rank * (d_in + d_out)` weights (A and B). The
    classification head (`hidden_size * num_labels + num_labels`) trains too. `total` counts
    the backbone, the head and the LoRA weights, as `training.parameter_report` does for the
    model that `apply_lora` returns. `adapter_bytes` is the float32 size of the LoRA weights
    and the head, the tensors `save_adapter` writes. This is what the rank widget draws.
    """
    backbone = _backbone_of(language_model)
    config = backbone.config
    targets = _check_targets(targets)
    shapes = target_shapes(config)
    per_layer = {}
    for target in targets:
        d_in, d_out = shapes[target]
        _check_rank(rank, d_in, d_out, target)
        per_layer[target] = rank * (d_in + d_out)
    lora_params = config.num_layers * sum(per_layer.values())
    head_params = config.hidden_size * num_labels + num_labels
    total = count_params(backbone.weights) + head_params + lora_params
    return {
        "targets": targets,
        "rank": int(rank),
        "num_layers": config.num_layers,
        "per_layer": per_layer,
        "lora_params": lora_params,
        "head_params": head_params,
        "trainable": lora_params + head_params,
        "total": total,
        "trainable_percent": 100.0 * (lora_params + head_params) / total,
        "adapter_bytes": 4 * (lora_params + head_params),
    }


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------


def _delta_kernel_float64(wrapper: LoRADense) -> np.ndarray:
    a = np.asarray(wrapper.lora_a, dtype=np.float64)
    b = np.asarray(wrapper.lora_b, dtype=np.float64)
    return wrapper.scale * (a @ b)


def merge_lora(model) -> LoRAInfo:
    """Add (alpha / r) A B to each wrapped kernel and put the plain Dense layers back, in place.

    Afterwards the model has the base architecture again, with no extra work per call and
    no LoRA weights in `model.weights`, and computes what the LoRA model computed up to
    float32 rounding. The wrappers keep A and B, so `unmerge_lora` can undo the merge.
    Raises ValueError if the model has no LoRA or is already merged.
    """
    backbone, state = _require_lora(model)
    if state.merged:
        raise ValueError("LoRA 已经合并进基座权重了，不能再合并一次（否则更新会被加两遍）；要恢复 LoRA 层请调用 unmerge_lora(model)。")
    for site in state.sites:
        kernel = site.base.kernel
        merged = np.asarray(kernel, dtype=np.float64) + _delta_kernel_float64(site.wrapper)
        kernel.assign(merged.astype(kernel.dtype))
        _swap_sublayer(site.owner, site.attribute, site.base)
    state.merged = True
    _reset_compiled_functions(model, backbone)
    return lora_info(model)


def unmerge_lora(model) -> LoRAInfo:
    """Subtract (alpha / r) A B from each merged kernel again and put the LoRADense wrappers back, in place.

    The restored float32 kernel differs from W0 by the float32 rounding of the merged and of
    the restored kernel, about 1e-7 for weights of magnitude 1. Raises ValueError unless the
    model is merged.
    """
    # NOTE: with a bfloat16 or float16 kernel the rounding of merge and unmerge is far larger,
    # because the merged kernel is stored in that dtype.
    backbone, state = _require_lora(model)
    if not state.merged:
        raise ValueError("模型的 LoRA 没有合并，无需 unmerge；merge_lora(model) 之后才能调用 unmerge_lora(model)。")
    for site in state.sites:
        kernel = site.base.kernel
        restored = np.asarray(kernel, dtype=np.float64) - _delta_kernel_float64(site.wrapper)
        kernel.assign(restored.astype(kernel.dtype))
        _swap_sublayer(site.owner, site.attribute, site.wrapper)
    state.merged = False
    _reset_compiled_functions(model, backbone)
    return lora_info(model)


# ---------------------------------------------------------------------------
# Saving and loading adapters
# ---------------------------------------------------------------------------


def _base_fingerprint(backbone) -> dict:
    """Describe the base model: its shape settings and a SHA-256 of its token embedding matrix.

    The checksum distinguishes two bases with the same settings, for example a pretrained and a
    randomly initialised one. LoRA never changes the token embedding.
    """
    fingerprint = {key: getattr(backbone.config, key) for key in BASE_CONFIG_KEYS}
    embedding = np.ascontiguousarray(np.asarray(backbone.token_embedding.embeddings, dtype=np.float32))
    fingerprint["token_embedding_sha256"] = hashlib.sha256(embedding.tobytes()).hexdigest()
    return fingerprint


def _head_description(model) -> dict | None:
    head = _head_of(model)
    if head is None:
        return None
    return {"model_class": type(model).__name__, "kernel_shape": [int(size) for size in head.kernel.shape],
            "use_bias": bool(head.use_bias)}


def save_adapter(model, directory, overwrite: bool = False) -> Path:
    """Write the adapter of a LoRA model: `adapter_model.safetensors` and `adapter_config.json`.

    The weights file contains the tensors of `adapter_tensors`. The config records rank,
    alpha, dropout, init, targets, wrapped paths, the base model's settings with a checksum
    of its token embedding, and the head's shape. A merged model can be saved too, because
    the wrappers keep A and B. An existing non-empty directory is kept unless `overwrite=True`.
    """
    backbone, state = _require_lora(model)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} 已存在且是文件；请换一个目录名。")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(
            f"目录 {directory} 已存在且不为空；为避免覆盖已有的 adapter，请换一个目录，或传入 overwrite=True。"
        )
    config = state.config
    adapter_config = {
        "format_version": ADAPTER_FORMAT_VERSION,
        "peft_type": "LORA",
        "rank": config.rank,
        "alpha": config.alpha,
        "dropout": config.dropout,
        "init": config.init,
        "targets": list(config.targets),
        "trainable_head": config.trainable_head,
        "paths": [site.path for site in state.sites],
        "base_model": _base_fingerprint(backbone),
        "head": _head_description(model),
    }
    tensors = adapter_tensors(model)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ADAPTER_CONFIG_FILE).write_text(json.dumps(adapter_config, ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8")
    weights_path = directory / ADAPTER_WEIGHTS_FILE
    save_file(tensors, str(weights_path))
    weights_path.chmod(0o644)  # safetensors creates the file readable by its owner only
    return directory


def _read_adapter_config(directory: Path) -> dict:
    if not directory.is_dir():
        raise FileNotFoundError(f"找不到 adapter 目录 {directory}；请传入 save_adapter 写出的目录。")
    missing = [name for name in (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"adapter 目录 {directory} 缺少 {missing}；save_adapter 会写出 {ADAPTER_CONFIG_FILE} 和 {ADAPTER_WEIGHTS_FILE}。")
    path = directory / ADAPTER_CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} 不是合法的 JSON（{error}）。") from error
    required = ("format_version", "rank", "alpha", "dropout", "init", "targets", "trainable_head", "base_model", "head")
    absent = [key for key in required if not isinstance(config, dict) or key not in config]
    if absent:
        raise ValueError(f"{path} 缺少字段 {absent}；它不是本项目 save_adapter 写出的 adapter 配置。")
    if config["format_version"] != ADAPTER_FORMAT_VERSION:
        raise ValueError(
            f"{path} 的 format_version={config['format_version']!r}，本版本只能读取 {ADAPTER_FORMAT_VERSION}；"
            "请用同一版本的 peft_lessons 重新保存 adapter。"
        )
    return config


def _check_base_model(saved: dict, backbone, verify_base_weights: bool, directory: Path) -> None:
    current = _base_fingerprint(backbone)
    differences = [f"{key}={saved.get(key)!r}（当前模型为 {current[key]!r}）"
                   for key in BASE_CONFIG_KEYS if saved.get(key) != current[key]]
    if differences:
        raise ValueError(
            f"adapter {directory} 是为另一个基座模型训练的：{'，'.join(differences)}。"
            "请在训练它时所用的同一个基座模型上加载。"
        )
    if verify_base_weights and saved.get("token_embedding_sha256") != current["token_embedding_sha256"]:
        raise ValueError(
            f"adapter {directory} 的基座模型结构相同，但词嵌入的校验和不同，说明基座权重不同"
            "（例如随机初始化的模型，或另一个预训练检查点）。请加载训练 adapter 时用的检查点；"
            "若确认基座相同、只是精度不同，可传入 verify_base_weights=False。"
        )


def _check_head(saved, model, directory: Path) -> None:
    current = _head_description(model)
    if saved == current:
        return
    if saved is None:
        raise ValueError(
            f"adapter {directory} 不含任务头，而当前模型 {type(model).__name__} 有分类头 classifier；"
            "请把它加载到保存时那种不带分类头的模型上。"
        )
    if current is None:
        raise ValueError(
            f"adapter {directory} 含有 {saved['model_class']} 的分类头（kernel 形状 {saved['kernel_shape']}），"
            f"而当前模型 {type(model).__name__} 没有分类头；请先用 {saved['model_class']}(language_model, "
            f"num_labels={saved['kernel_shape'][1]}) 包装语言模型再加载。"
        )
    raise ValueError(
        f"adapter {directory} 的分类头来自 {saved['model_class']}，kernel 形状 {saved['kernel_shape']}；"
        f"当前模型是 {current['model_class']}，kernel 形状 {current['kernel_shape']}。"
        f"请用相同的任务头类型和 num_labels={saved['kernel_shape'][1]} 构建模型。"
    )


def _check_lora_settings(saved: dict, config: LoRAConfig, directory: Path) -> None:
    saved_targets = _check_targets(saved["targets"])
    differences = []
    if saved["rank"] != config.rank:
        differences.append(f"rank={saved['rank']}（当前模型 {config.rank}）")
    if float(saved["alpha"]) != config.alpha:
        differences.append(f"alpha={saved['alpha']}（当前模型 {config.alpha}）")
    if saved_targets != config.targets:
        differences.append(f"targets={saved_targets}（当前模型 {config.targets}）")
    if differences:
        raise ValueError(
            f"adapter {directory} 的 LoRA 设置与模型上已有的 LoRA 不同：{'，'.join(differences)}。"
            "要加载它，请在没有 LoRA 的新模型上调用 load_adapter，它会按 adapter 的设置应用 LoRA。"
        )


def _expected_shapes(sites: list[_Site], rank: int, model) -> dict:
    shapes = {}
    for site in sites:
        d_in, d_out = (int(size) for size in site.base.kernel.shape)
        shapes[f"{site.path}/lora_a"] = (d_in, rank)
        shapes[f"{site.path}/lora_b"] = (rank, d_out)
    head = _head_of(model)
    if head is not None:
        shapes["classifier/kernel"] = tuple(int(size) for size in head.kernel.shape)
        if head.use_bias:
            shapes["classifier/bias"] = tuple(int(size) for size in head.bias.shape)
    return shapes


def _check_tensors(tensors: dict, shapes: dict, directory: Path) -> None:
    path = directory / ADAPTER_WEIGHTS_FILE
    missing = sorted(set(shapes) - set(tensors))
    unexpected = sorted(set(tensors) - set(shapes))
    if missing or unexpected:
        raise ValueError(
            f"{path} 的张量与 adapter 配置不符：缺少 {missing[:3]}，多出 {unexpected[:3]}"
            f"（共缺 {len(missing)} 个、多 {len(unexpected)} 个）；文件可能损坏，请重新保存 adapter。"
        )
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{path} 中张量 {name} 的形状是 {tuple(tensors[name].shape)}，应为 {shape}；请重新保存 adapter。")


def load_adapter(model, directory, *, verify_base_weights: bool = True) -> LoRAInfo:
    """Load an adapter written by `save_adapter` into `model`, in place.

    A model without LoRA first gets `apply_lora` with the adapter's settings. A model with
    LoRA must have the same rank, alpha and targets, and then loading only replaces A, B and
    the head, so adapters can be switched on one model. Dropout and init from the file are
    used only when load_adapter applies LoRA itself. Everything is checked before anything
    changes: a base model with other settings or (with `verify_base_weights`) another token
    embedding, another head, other LoRA settings or a merged model raise ValueError.
    """
    directory = Path(directory)
    saved = _read_adapter_config(directory)
    backbone = _backbone_of(model)
    _check_base_model(saved["base_model"], backbone, verify_base_weights, directory)
    _check_head(saved["head"], model, directory)
    targets = _check_targets(saved["targets"])
    state = _lora_state(backbone)
    if state is not None:
        if state.merged:
            raise ValueError("模型的 LoRA 已合并进基座权重；请先调用 unmerge_lora(model)，再加载另一个 adapter。")
        _check_lora_settings(saved, state.config, directory)
        sites = state.sites
        rank = state.config.rank
    else:
        sites = _find_sites(backbone, targets)
        rank = saved["rank"]
        for site in sites:
            d_in, d_out = (int(size) for size in site.base.kernel.shape)
            _check_rank(rank, d_in, d_out, site.path)
    tensors = load_file(str(directory / ADAPTER_WEIGHTS_FILE))
    _check_tensors(tensors, _expected_shapes(sites, rank, model), directory)

    if state is None:
        apply_lora(model, targets=targets, rank=rank, alpha=saved["alpha"], dropout=saved["dropout"],
                   init=saved["init"], trainable_head=saved["trainable_head"])
    for path, wrapper in lora_layers(model).items():
        wrapper.lora_a.assign(tensors[f"{path}/lora_a"])
        wrapper.lora_b.assign(tensors[f"{path}/lora_b"])
    head = _head_of(model)
    if head is not None:
        head.kernel.assign(tensors["classifier/kernel"].astype(head.kernel.dtype))
        if head.use_bias:
            head.bias.assign(tensors["classifier/bias"].astype(head.bias.dtype))
    return lora_info(model)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def train_lora_classifier(model_name_or_model, tokenizer, train_split, validation_split, *, test_split=None,
                          k: int | None = None, targets=("query", "value"), rank: int = 8, alpha: float = 16,
                          dropout: float = 0.0, init: str = "gaussian", max_length: int = 64, batch_size: int = 32,
                          epochs: int = 10, learning_rate: float = DEFAULT_LEARNING_RATE, patience: int = 2,
                          seed: int = 0, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Train a SequenceClassifier whose backbone is frozen except for LoRA on `targets`, with AdamW.

    Builds `SequenceClassifier` on the language model, calls `apply_lora` (the head stays
    trainable) and trains with `training.train_classifier`, which keeps the best validation
    epoch. `k`, `patience` and early stopping work as in `prompting.train_classifier_baseline`.
    A name loads a fresh copy of the model. A model passed as an object gets LoRA in place,
    so a second call on the same object raises ValueError.

    Returns a dict with the keys of `train_classifier_baseline` (method "LoRA", the
    classifier, history, best epoch, training size, trainable parameter count, seconds, and
    metrics from `evaluate_probabilities` on the validation and, if given, test split),
    plus "lora", the `LoRAInfo` of the classifier.
    """
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    train_split = _few_shot_splits(train_split, validation_split, test_split, k, seed)
    num_labels = max(2, int(np.max(train_split.labels)) + 1)

    set_seed(seed)
    classifier = SequenceClassifier(language_model, num_labels=num_labels)
    info = apply_lora(classifier, targets=targets, rank=rank, alpha=alpha, dropout=dropout, init=init,
                      trainable_head=True)
    result = train_classifier(classifier, tokenizer, train_split, validation_split, max_length=max_length,
                              batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                              patience=patience, seed=seed, jit_compile=jit_compile, verbose=verbose)

    def metrics(split):
        probabilities = _classifier_probabilities(classifier, tokenizer, split, max_length, batch_size)
        return evaluate_probabilities(split.labels, probabilities)

    return {
        "method": "LoRA",
        "model": classifier,
        "history": result["history"],
        "best_epoch": result["best_epoch"],
        "train_size": len(train_split),
        "trainable_params": parameter_report(classifier).trainable,
        "seconds": result["seconds"],
        "validation": metrics(validation_split),
        "test": metrics(test_split) if test_split is not None else None,
        "lora": info,
    }
