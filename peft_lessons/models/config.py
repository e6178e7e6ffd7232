"""Model configuration shared by the GPT-2 and BERT backbones, and its mapping to Hugging Face's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SUPPORTED_MODEL_TYPES = ("gpt2", "bert")
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass
class ModelConfig:
    """Hyper-parameters of one backbone, named the same way for both architectures."""

    model_type: str
    vocab_size: int
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_positions: int = 128
    type_vocab_size: int = 2
    layer_norm_eps: float | None = None
    hidden_act: str | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    # Fields of config.json that this project does not use, kept so that saving writes them back.
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"不支持的 model_type：{self.model_type!r}。本项目支持 {SUPPORTED_MODEL_TYPES}；"
                "请换用 GPT-2 或 BERT 结构的检查点。"
            )
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"配置项 {name} 必须是正整数，收到 {value!r}。")
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} 不能被 num_heads={self.num_heads} 整除；"
                "请让 hidden_size 是 num_heads 的整数倍（例如 256 与 4）。"
            )
        if self.layer_norm_eps is None:
            self.layer_norm_eps = 1e-5 if self.model_type == "gpt2" else 1e-12
        if self.hidden_act is None:
            self.hidden_act = "gelu_new" if self.model_type == "gpt2" else "gelu"
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"不支持的激活函数 {self.hidden_act!r}，可选 {SUPPORTED_ACTIVATIONS}。")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"配置项 {name} 必须在 [0, 1) 之间，收到 {value!r}。")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    # ---- Hugging Face config.json ----

    @classmethod
    def from_hf_dict(cls, hf: dict) -> "ModelConfig":
        """Build a config from the fields of a Hugging Face config.json."""
        model_type = hf.get("model_type")
        hf = dict(hf)
        if model_type == "gpt2":
            hidden = hf.pop("n_embd")
            inner = hf.pop("n_inner", None)
            config = cls(
                model_type="gpt2",
                vocab_size=hf.pop("vocab_size"),
                hidden_size=hidden,
                num_layers=hf.pop("n_layer"),
                num_heads=hf.pop("n_head"),
                intermediate_size=inner if inner else 4 * hidden,
                max_positions=hf.pop("n_positions"),
                layer_norm_eps=hf.pop("layer_norm_epsilon", 1e-5),
                hidden_act=hf.pop("activation_function", "gelu_new"),
                dropout=hf.pop("resid_pdrop", 0.1),
                attention_dropout=hf.pop("attn_pdrop", 0.1),
                pad_token_id=hf.pop("pad_token_id", None) or 0,
            )
            hf.pop("embd_pdrop", None)
            hf.pop("n_ctx", None)
        elif model_type == "bert":
            config = cls(
                model_type="bert",
                vocab_size=hf.pop("vocab_size"),
                hidden_size=hf.pop("hidden_size"),
                num_layers=hf.pop("num_hidden_layers"),
                num_heads=hf.pop("num_attention_heads"),
                intermediate_size=hf.pop("intermediate_size"),
                max_positions=hf.pop("max_position_embeddings"),
                type_vocab_size=hf.pop("type_vocab_size", 2),
                layer_norm_eps=hf.pop("layer_norm_eps", 1e-12),
                hidden_act=hf.pop("hidden_act", "gelu"),
                dropout=hf.pop("hidden_dropout_prob", 0.1),
                attention_dropout=hf.pop("attention_probs_dropout_prob", 0.1),
                pad_token_id=hf.pop("pad_token_id", None) or 0,
            )
            position_type = hf.get("position_embedding_type", "absolute")
            if position_type != "absolute":
                raise ValueError(
                    f"不支持 position_embedding_type={position_type!r}；本项目的 BERT 只实现绝对位置编码。"
                )
        else:
            raise ValueError(
                f"config.json 中的 model_type={model_type!r} 不受支持。本项目支持 {SUPPORTED_MODEL_TYPES}；"
                "请换用 GPT-2 或 BERT 结构的检查点（例如 bert-base-chinese、uer/gpt2-chinese-cluecorpussmall）。"
            )
        hf.pop("model_type", None)
        config.extra = hf
        return config

    def to_hf_dict(self) -> dict:
        """Return the fields of a Hugging Face config.json for this config."""
        hf = dict(self.extra)
        if self.model_type == "gpt2":
            hf.update(
                model_type="gpt2",
                vocab_size=self.vocab_size,
                n_embd=self.hidden_size,
                n_layer=self.num_layers,
                n_head=self.num_heads,
                n_inner=self.intermediate_size,
                n_positions=self.max_positions,
                n_ctx=self.max_positions,
                layer_norm_epsilon=self.layer_norm_eps,
                activation_function=self.hidden_act,
                resid_pdrop=self.dropout,
                embd_pdrop=self.dropout,
                attn_pdrop=self.attention_dropout,
                pad_token_id=self.pad_token_id,
            )
            hf.setdefault("architectures", ["GPT2LMHeadModel"])
            hf.setdefault("tie_word_embeddings", True)
        else:
            hf.update(
                model_type="bert",
                vocab_size=self.vocab_size,
                hidden_size=self.hidden_size,
                num_hidden_layers=self.num_layers,
                num_attention_heads=self.num_heads,
                intermediate_size=self.intermediate_size,
                max_position_embeddings=self.max_positions,
                type_vocab_size=self.type_vocab_size,
                layer_norm_eps=self.layer_norm_eps,
                hidden_act=self.hidden_act,
                hidden_dropout_prob=self.dropout,
                attention_probs_dropout_prob=self.attention_dropout,
                pad_token_id=self.pad_token_id,
            )
            hf.setdefault("architectures", ["BertForMaskedLM"])
        return dict(sorted(hf.items()))
