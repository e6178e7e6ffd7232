"""Small, readable Keras 3 Transformers: the GPT-2 and BERT architectures that the PEFT methods modify."""

from .attention import MultiHeadAttention
from .bert import BertForMaskedLM, BertLayer, BertModel
from .config import ModelConfig
from .gpt2 import GPT2Block, GPT2LMHeadModel, GPT2Model
from .heads import SequenceClassifier, TokenClassifier, build_language_model

__all__ = [
    "BertForMaskedLM",
    "BertLayer",
    "BertModel",
    "GPT2Block",
    "GPT2LMHeadModel",
    "GPT2Model",
    "ModelConfig",
    "MultiHeadAttention",
    "SequenceClassifier",
    "TokenClassifier",
    "build_language_model",
]
