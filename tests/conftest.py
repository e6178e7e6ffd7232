import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from peft_lessons.models import ModelConfig
from peft_lessons.tokenization import ChineseTokenizer, build_vocab

SENTENCES = [
    "今天天气很好，我们去公园散步。",
    "这本书写得很差，不推荐购买。",
    "１２月３１日，国家主席发表新年讲话。",
    "iPhone 2010年上市",
]


@pytest.fixture(scope="session")
def small_tokenizer():
    return ChineseTokenizer(build_vocab(SENTENCES, min_count=1), model_max_length=32)


def small_config(model_type, tokenizer, **changes):
    values = dict(model_type=model_type, vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                  num_heads=4, intermediate_size=64, max_positions=32, dropout=0.0, attention_dropout=0.0)
    values.update(changes)
    return ModelConfig(**values)


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
