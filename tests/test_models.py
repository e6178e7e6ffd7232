import keras
import numpy as np
import pytest
from keras import ops

from conftest import max_abs_diff, small_config
from peft_lessons.models import (
    BertForMaskedLM,
    BertModel,
    GPT2LMHeadModel,
    GPT2Model,
    ModelConfig,
    MultiHeadAttention,
    SequenceClassifier,
    TokenClassifier,
    build_language_model,
)

# Hugging Face parameter counts for the published base configurations (random init).
GPT2_BASE = dict(vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_positions=1024)
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_positions=512)


def test_gpt2_base_parameter_count_matches_hf():
    model = GPT2Model(ModelConfig("gpt2", **GPT2_BASE))
    assert model.count_params() == 124_439_808


def test_gpt2_lm_head_adds_no_parameters():
    model = GPT2LMHeadModel(ModelConfig("gpt2", **GPT2_BASE))
    assert model.count_params() == 124_439_808


def test_bert_base_parameter_count_matches_hf():
    model = BertModel(ModelConfig("bert", **BERT_BASE))
    assert model.count_params() == 109_482_240


def test_config_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="不能被 num_heads=5 整除"):
        ModelConfig("bert", vocab_size=10, hidden_size=32, num_heads=5)


def test_config_rejects_unknown_model_type():
    with pytest.raises(ValueError, match="不支持的 model_type"):
        ModelConfig("t5", vocab_size=10)


def test_config_rejects_non_positive_size():
    with pytest.raises(ValueError, match="num_layers 必须是正整数"):
        ModelConfig("gpt2", vocab_size=10, num_layers=0)


def test_config_hf_round_trip():
    for model_type in ("gpt2", "bert"):
        config = ModelConfig(model_type, vocab_size=100, hidden_size=64, num_layers=3, num_heads=4,
                             intermediate_size=128, max_positions=40)
        again = ModelConfig.from_hf_dict(config.to_hf_dict())
        assert again.replace(extra={}) == config
        assert again.to_hf_dict() == config.to_hf_dict()


def _batch(tokenizer, texts, length=16):
    return tokenizer.encode_batch(texts, max_length=length)


def test_gpt2_is_causal(small_tokenizer):
    model = GPT2LMHeadModel(small_config("gpt2", small_tokenizer))
    ids = _batch(small_tokenizer, ["今天天气很好"])["input_ids"]
    changed = ids.copy()
    changed[0, 5] = small_tokenizer.token_to_id["差"]
    before, after = np.asarray(model(ids)), np.asarray(model(changed))
    assert max_abs_diff(before[0, :5], after[0, :5]) == 0.0
    assert max_abs_diff(before[0, 5:], after[0, 5:]) > 1e-4


def test_bert_sees_both_directions(small_tokenizer):
    model = BertModel(small_config("bert", small_tokenizer))
    ids = _batch(small_tokenizer, ["今天天气很好"])["input_ids"]
    changed = ids.copy()
    changed[0, 5] = small_tokenizer.token_to_id["差"]
    assert max_abs_diff(model(ids)[0, :5], model(changed)[0, :5]) > 1e-4


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_padding_does_not_change_real_tokens(small_tokenizer, model_type):
    model = build_language_model(small_config(model_type, small_tokenizer))
    short = small_tokenizer.encode_batch(["今天天气很好"], padding="longest")
    padded = small_tokenizer.encode_batch(["今天天气很好"], max_length=20)
    length = short["input_ids"].shape[1]
    assert max_abs_diff(model(short)[0], model(padded)[0, :length]) < 1e-5


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_inputs_embeds_equal_input_ids(small_tokenizer, model_type):
    model = build_language_model(small_config(model_type, small_tokenizer))
    batch = _batch(small_tokenizer, ["今天天气很好", "不推荐购买"])
    embeds = model.backbone.embed_tokens(batch["input_ids"])
    by_embeds = dict(batch, inputs_embeds=embeds, input_ids=None)
    assert max_abs_diff(model(batch), model(by_embeds)) < 1e-6


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_sequence_longer_than_max_positions_rejected(small_tokenizer, model_type):
    model = build_language_model(small_config(model_type, small_tokenizer, max_positions=8))
    with pytest.raises(ValueError, match="超过了模型的 max_positions=8"):
        model(np.ones((1, 9), dtype=np.int32))


def test_empty_batch_rejected(small_tokenizer):
    model = build_language_model(small_config("bert", small_tokenizer))
    with pytest.raises(ValueError, match="batch 为空"):
        model(np.ones((0, 4), dtype=np.int32))


def _prefixes(config, batch, prefix_len, seed=0):
    rng = np.random.default_rng(seed)
    shape = (batch, prefix_len, config.num_heads, config.head_dim)
    return [(rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32"))
            for _ in range(config.num_layers)]


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_prefix_in_one_layer_changes_output(small_tokenizer, model_type):
    config = small_config(model_type, small_tokenizer)
    model = build_language_model(config)
    batch = _batch(small_tokenizer, ["今天天气很好"])
    prefixes = _prefixes(config, 1, 3)
    base = np.asarray(model(batch, prefixes=prefixes))
    for layer in range(config.num_layers):
        changed = list(prefixes)
        changed[layer] = (prefixes[layer][0] + 1.0, prefixes[layer][1])
        # Every real token, the first included, attends to the prefix (causal masking is among real tokens).
        assert max_abs_diff(base[0, 0], model(batch, prefixes=changed)[0, 0]) > 1e-4


def test_prefix_attention_matches_manual_softmax():
    layer = MultiHeadAttention(hidden_size=8, num_heads=2, causal=True)
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(1, 3, 8)).astype("float32")
    prefix_key = rng.normal(size=(1, 2, 2, 4)).astype("float32")
    prefix_value = rng.normal(size=(1, 2, 2, 4)).astype("float32")
    out = np.asarray(layer(hidden, attention_mask=np.array([[1, 1, 0]]), prefix=(prefix_key, prefix_value)))

    def project(dense, x):
        return x @ np.asarray(dense.kernel) + np.asarray(dense.bias)

    q = project(layer.query, hidden[0]).reshape(3, 2, 4)
    k = np.concatenate([prefix_key[0], project(layer.key, hidden[0]).reshape(3, 2, 4)])
    v = np.concatenate([prefix_value[0], project(layer.value, hidden[0]).reshape(3, 2, 4)])
    expected = np.zeros((3, 2, 4))
    for head in range(2):
        for t in range(3):
            # prefix columns 0-1 always visible; real key j visible if j <= t and j is not padding
            visible = [0, 1] + [2 + j for j in range(3) if j <= t and j != 2]
            scores = np.array([q[t, head] @ k[c, head] for c in visible]) / 2.0
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            expected[t, head] = sum(w * v[c, head] for w, c in zip(weights, visible))
    expected = project(layer.output_dense, expected.reshape(3, 8))
    assert max_abs_diff(out[0], expected) < 1e-5


def test_prefix_with_wrong_head_dim_rejected(small_tokenizer):
    config = small_config("bert", small_tokenizer)
    model = build_language_model(config)
    bad = np.zeros((1, 2, config.num_heads, config.head_dim + 1), dtype="float32")
    with pytest.raises(ValueError, match="与本层不匹配"):
        model(_batch(small_tokenizer, ["你好"]), prefixes=[(bad, bad)] * config.num_layers)


def test_prefix_list_length_checked(small_tokenizer):
    config = small_config("gpt2", small_tokenizer)
    model = build_language_model(config)
    with pytest.raises(ValueError, match="模型有 2 层"):
        model(_batch(small_tokenizer, ["你好"]), prefixes=_prefixes(config, 1, 2)[:1])


def test_mixed_precision_masks_stay_finite(small_tokenizer):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        for model_type in ("gpt2", "bert"):
            model = build_language_model(small_config(model_type, small_tokenizer))
            batch = small_tokenizer.encode_batch(["你好", "今天天气很好"], max_length=12)
            logits = np.asarray(model(batch))
            assert logits.dtype == np.float32
            assert np.isfinite(logits).all()
    finally:
        keras.config.set_dtype_policy("float32")


def test_gpt2_classifier_pools_last_real_token(small_tokenizer):
    classifier = SequenceClassifier(GPT2LMHeadModel(small_config("gpt2", small_tokenizer)), num_labels=2)
    short = small_tokenizer.encode_batch(["今天天气很好"], padding="longest")
    padded = small_tokenizer.encode_batch(["今天天气很好"], max_length=20)
    assert max_abs_diff(classifier(short), classifier(padded)) < 1e-5


def test_bert_heads_output_shapes(small_tokenizer):
    bert = BertForMaskedLM(small_config("bert", small_tokenizer))
    batch = _batch(small_tokenizer, ["今天天气很好", "不推荐"])
    assert tuple(SequenceClassifier(bert, 3)(batch).shape) == (2, 3)
    assert tuple(TokenClassifier(bert, 7)(batch).shape) == (2, 16, 7)


def test_classifier_rejects_one_label(small_tokenizer):
    with pytest.raises(ValueError, match="num_labels"):
        SequenceClassifier(BertForMaskedLM(small_config("bert", small_tokenizer)), num_labels=1)


def test_lm_logits_use_tied_embedding(small_tokenizer):
    model = GPT2LMHeadModel(small_config("gpt2", small_tokenizer))
    batch = _batch(small_tokenizer, ["你好"])
    hidden = model.backbone(batch)
    expected = ops.matmul(hidden, ops.transpose(model.backbone.token_embedding.embeddings))
    assert max_abs_diff(model(batch), expected) < 1e-5
