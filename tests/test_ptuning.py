import keras
import numpy as np
import pytest

from conftest import small_config
from peft_lessons import data
from peft_lessons.checkpoints import bundled_models, load_llm, load_tokenizer
from peft_lessons.models import build_language_model
from peft_lessons.prompting import Verbalizer, accuracy
from peft_lessons.ptuning import (
    PromptEncoder,
    PTuningModel,
    encode_ptuning,
    label_probabilities,
    layout,
    parameter_counts,
    prompt_encoder_params,
    train_ptuning,
)
from peft_lessons.training import count_params

# Every character of these texts is in the small test vocabulary.
SHORT, LONG = "很好", "今天天气很差"
BERT_TEMPLATE = (1, 2, 1)
GPT_TEMPLATE = (2, 1)
TEMPLATES = {"bert": BERT_TEMPLATE, "gpt2": GPT_TEMPLATE}


@pytest.fixture(scope="module")
def verbalizer(small_tokenizer):
    return Verbalizer({0: "差", 1: "好"}, small_tokenizer)


def fresh_model(tokenizer, verbalizer, model_type, seed=0, **options):
    keras.utils.set_random_seed(seed)
    language_model = build_language_model(small_config(model_type, tokenizer))
    return PTuningModel(language_model, TEMPLATES[model_type], verbalizer, **options)


def snapshot(weights):
    return [np.array(weight.numpy()) for weight in weights]


def fit_a_few_steps(model, tokenizer):
    features = encode_ptuning(tokenizer, [SHORT, LONG, "不推荐购买", "这本书写得很差"], model.template,
                              model.model_type, max_length=16)
    labels = np.array([1, 0, 0, 0], dtype=np.int32)
    # Adam without weight decay, so that only weights with a gradient can change.
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, batch_size=4, epochs=3, verbose=0)


# ---- prompt encoder ----

# Template (2, 3) gives S = 5 pseudo tokens. With H = 32 and u = 16 LSTM units per direction:
#   embedding 5*32 = 160
#   MLP (32*32 + 32) + (32*32 + 32) = 2112
#   each bidirectional LSTM layer (input 32) 2 * 4*16*(32 + 16 + 1) = 6272, two layers 12544
# With H = 7 (odd), u = 3 and the LSTM output is 6 wide:
#   embedding 35, LSTM 2*4*3*(7+3+1) + 2*4*3*(6+3+1) = 264 + 240, MLP (6*7 + 7) + (7*7 + 7) = 105
@pytest.mark.parametrize("reparameterization, hidden_size, expected_params", [
    ("none", 32, 160),
    ("mlp", 32, 160 + 2112),
    ("lstm", 32, 160 + 12544 + 2112),
    ("lstm", 7, 35 + 264 + 240 + 105),
])
def test_encoder_shape_and_param_count(reparameterization, hidden_size, expected_params):
    encoder = PromptEncoder((2, 3), hidden_size, reparameterization)
    prompts = encoder()
    assert tuple(prompts.shape) == (5, hidden_size)
    assert prompts.dtype == "float32"
    assert count_params(encoder.weights) == expected_params
    assert prompt_encoder_params((2, 3), hidden_size, reparameterization) == expected_params


def test_encoder_none_returns_embedding_rows():
    encoder = PromptEncoder((1, 2), 8, "none")
    np.testing.assert_array_equal(np.asarray(encoder()), encoder.embedding.embeddings.numpy())


def test_encoder_mlp_matches_manual_formula():
    encoder = PromptEncoder((2, 2), 8, "mlp")
    table = encoder.embedding.embeddings.numpy()
    hidden = np.maximum(table @ encoder.mlp_hidden.kernel.numpy() + encoder.mlp_hidden.bias.numpy(), 0.0)
    expected = hidden @ encoder.mlp_output.kernel.numpy() + encoder.mlp_output.bias.numpy()
    np.testing.assert_allclose(np.asarray(encoder()), expected, atol=1e-6)


def test_encoder_lstm_mixes_neighbours():
    # Through the bidirectional LSTM, changing one pseudo token's vector changes every output row.
    encoder = PromptEncoder((2, 2), 8, "lstm")
    before = np.asarray(encoder())
    table = encoder.embedding.embeddings.numpy()
    table[0] += 1.0
    encoder.embedding.embeddings.assign(table)
    after = np.asarray(encoder())
    assert np.all(np.abs(after - before).max(axis=1) > 1e-6)


def test_encoder_stays_float32_under_mixed_precision(small_tokenizer, verbalizer):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = fresh_model(small_tokenizer, verbalizer, "gpt2")
        features = encode_ptuning(small_tokenizer, [SHORT], GPT_TEMPLATE, "gpt2", max_length=12)
        token_embeddings = model.language_model.backbone.embed_tokens(features["input_ids"])
        embeddings = model.embed_inputs(features)
        logits = model(features)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {weight.dtype for weight in model.prompt_encoder.weights} == {"float32"}
    assert model.prompt_encoder().dtype == "float32"
    assert token_embeddings.dtype == "bfloat16"
    assert embeddings.dtype == token_embeddings.dtype
    assert logits.dtype == "float32"


# ---- input layout ----

def test_bert_encoding_with_padding(small_tokenizer):
    features = encode_ptuning(small_tokenizer, [SHORT, LONG], BERT_TEMPLATE, "bert", max_length=14)
    ids = small_tokenizer.token_to_id
    cls, sep, mask, pad, unk = ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")
    short = [cls, unk, "很", "好", unk, unk, mask, unk, sep] + [pad] * 5
    long = [cls, unk, "今", "天", "天", "气", "很", "差", unk, unk, mask, unk, sep, pad]
    expected_ids = [[ids[token] for token in row] for row in (short, long)]
    np.testing.assert_array_equal(features["input_ids"], expected_ids)
    np.testing.assert_array_equal(features["attention_mask"], [[1] * 9 + [0] * 5, [1] * 13 + [0]])
    np.testing.assert_array_equal(features["prompt_index"], [
        [-1, 0, -1, -1, 1, 2, -1, 3, -1] + [-1] * 5,
        [-1, 0, -1, -1, -1, -1, -1, -1, 1, 2, -1, 3, -1, -1],
    ])
    np.testing.assert_array_equal(features["answer_positions"], [6, 10])
    np.testing.assert_array_equal(features["token_type_ids"], np.zeros((2, 14)))
    for key, value in features.items():
        assert value.dtype == np.int32, key


def test_gpt_encoding_with_padding(small_tokenizer):
    features = encode_ptuning(small_tokenizer, [SHORT, LONG], GPT_TEMPLATE, "gpt2", max_length=12)
    ids = small_tokenizer.token_to_id
    cls, pad, unk = ids["[CLS]"], ids["[PAD]"], ids["[UNK]"]
    short = [cls, unk, unk, ids["很"], ids["好"], unk] + [pad] * 6
    long = [cls, unk, unk] + [ids[char] for char in LONG] + [unk, pad, pad]
    np.testing.assert_array_equal(features["input_ids"], [short, long])
    np.testing.assert_array_equal(features["attention_mask"], [[1] * 6 + [0] * 6, [1] * 10 + [0] * 2])
    np.testing.assert_array_equal(features["prompt_index"], [
        [-1, 0, 1, -1, -1, 2] + [-1] * 6,
        [-1, 0, 1] + [-1] * 6 + [2, -1, -1],
    ])
    np.testing.assert_array_equal(features["answer_positions"], [5, 9])
    assert small_tokenizer.sep_id not in features["input_ids"]


def test_bert_template_without_s3(small_tokenizer):
    features = encode_ptuning(small_tokenizer, [SHORT], (1, 1), "bert", max_length=8)
    tokens = small_tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    assert tokens[:7] == ["[CLS]", "[UNK]", "很", "好", "[UNK]", "[MASK]", "[SEP]"]
    assert features["answer_positions"][0] == 5


@pytest.mark.parametrize("model_type, expected", [
    ("bert", [("[CLS]", "cls"), ("[P0]", "prompt"), ("很", "text"), ("好", "text"), ("[P1]", "prompt"),
              ("[P2]", "prompt"), ("[MASK]", "mask"), ("[P3]", "prompt"), ("[SEP]", "sep")]),
    ("gpt2", [("[CLS]", "cls"), ("[P0]", "prompt"), ("[P1]", "prompt"), ("很", "text"), ("好", "text"),
              ("[P2]", "prompt")]),
])
def test_layout_lists_tokens_and_kinds(small_tokenizer, model_type, expected):
    assert layout(small_tokenizer, SHORT, TEMPLATES[model_type], model_type, max_length=16) == expected


@pytest.mark.parametrize("model_type, tail", [
    ("bert", ["[P1]", "[P2]", "[MASK]", "[P3]", "[SEP]"]),
    ("gpt2", ["[P2]"]),
])
def test_long_text_cut_prompts_kept(small_tokenizer, model_type, tail):
    long_text = "今天天气很好，我们去公园散步。" * 3
    template = TEMPLATES[model_type]
    pairs = layout(small_tokenizer, long_text, template, model_type, max_length=12)
    assert len(pairs) == 12
    assert [token for token, _ in pairs[-len(tail):]] == tail
    assert [token for token, kind in pairs if kind == "text"][:3] == ["今", "天", "天"]
    assert sum(kind == "prompt" for _, kind in pairs) == sum(template)
    features = encode_ptuning(small_tokenizer, [long_text], template, model_type, max_length=12)
    assert features["attention_mask"][0].sum() == 12


# ---- the model ----

@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_prompt_slots_hold_encoder_output(small_tokenizer, verbalizer, model_type):
    model = fresh_model(small_tokenizer, verbalizer, model_type)
    features = encode_ptuning(small_tokenizer, [SHORT, LONG], TEMPLATES[model_type], model_type, max_length=14)
    embeddings = np.asarray(model.embed_inputs(features))
    prompts = np.asarray(model.prompt_encoder())
    token_embeddings = np.asarray(model.language_model.backbone.embed_tokens(features["input_ids"]))

    prompt_index = features["prompt_index"]
    rows, columns = np.nonzero(prompt_index >= 0)
    assert len(rows) == 2 * sum(TEMPLATES[model_type])
    np.testing.assert_array_equal(embeddings[rows, columns], prompts[prompt_index[rows, columns]])
    others = prompt_index < 0
    np.testing.assert_array_equal(embeddings[others], token_embeddings[others])


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_padding_keeps_label_logits(small_tokenizer, verbalizer, model_type):
    model = fresh_model(small_tokenizer, verbalizer, model_type)
    template = TEMPLATES[model_type]
    alone = encode_ptuning(small_tokenizer, [SHORT], template, model_type, max_length=9)
    batched = encode_ptuning(small_tokenizer, [SHORT, LONG], template, model_type, max_length=20)
    assert batched["attention_mask"][0].sum() < 20
    logits_alone = np.asarray(model(alone))[0]
    logits_batched = np.asarray(model(batched))[0]
    np.testing.assert_allclose(logits_alone, logits_batched, atol=1e-5)


def test_label_probabilities_are_softmax_of_logits(small_tokenizer, verbalizer):
    model = fresh_model(small_tokenizer, verbalizer, "bert")
    texts = [SHORT, LONG, "不推荐购买"]
    probabilities = label_probabilities(model, small_tokenizer, texts, max_length=16, batch_size=2)
    logits = np.asarray(model(encode_ptuning(small_tokenizer, texts, BERT_TEMPLATE, "bert", 16)), dtype=np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_parameter_counts_by_part(small_tokenizer, verbalizer):
    model = fresh_model(small_tokenizer, verbalizer, "bert", reparameterization="mlp")
    counts = parameter_counts(model)
    encoder = prompt_encoder_params(BERT_TEMPLATE, 32, "mlp")
    language_model = count_params(model.language_model.weights)
    assert counts["prompt_encoder"] == encoder == 4 * 32 + 2 * (32 * 32 + 32)
    assert counts["language_model"] == language_model
    assert counts["total"] == encoder + language_model
    assert counts["trainable"] == encoder
    assert counts["prompt_encoder_percent"] == pytest.approx(100 * encoder / (encoder + language_model))


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_frozen_training_changes_only_encoder(small_tokenizer, verbalizer, model_type):
    model = fresh_model(small_tokenizer, verbalizer, model_type)
    language_model_before = snapshot(model.language_model.weights)
    encoder_before = snapshot(model.prompt_encoder.weights)
    fit_a_few_steps(model, small_tokenizer)

    for before, weight in zip(language_model_before, model.language_model.weights):
        np.testing.assert_array_equal(weight.numpy(), before, err_msg=weight.path)
    for before, weight in zip(encoder_before, model.prompt_encoder.weights):
        assert not np.array_equal(weight.numpy(), before), weight.path


def test_unfrozen_training_changes_language_model(small_tokenizer, verbalizer):
    model = fresh_model(small_tokenizer, verbalizer, "gpt2", freeze_backbone=False)
    assert parameter_counts(model)["trainable"] == parameter_counts(model)["total"]
    language_model_before = snapshot(model.language_model.weights)
    encoder_before = snapshot(model.prompt_encoder.weights)
    fit_a_few_steps(model, small_tokenizer)

    # Every GPT-2 weight lies on the path to the label logits, so each gets a gradient.
    for before, weight in zip(language_model_before, model.language_model.weights):
        assert not np.array_equal(weight.numpy(), before), weight.path
    for before, weight in zip(encoder_before, model.prompt_encoder.weights):
        assert not np.array_equal(weight.numpy(), before), weight.path


def test_unfreezing_restores_trainable_flag(small_tokenizer, verbalizer):
    model = fresh_model(small_tokenizer, verbalizer, "bert")
    assert not model.language_model.trainable
    PTuningModel(model.language_model, BERT_TEMPLATE, verbalizer, freeze_backbone=False)
    assert model.language_model.trainable


def test_train_ptuning_frozen_result(small_tokenizer, verbalizer):
    split = data.TextSplit([SHORT, LONG, "不推荐购买", "今天天气很好"], [1, 0, 0, 1])
    keras.utils.set_random_seed(1)
    language_model = build_language_model(small_config("bert", small_tokenizer))
    before = snapshot(language_model.weights)
    result = train_ptuning(language_model, small_tokenizer, BERT_TEMPLATE, verbalizer, split, split,
                           test_split=split, reparameterization="mlp", max_length=16, batch_size=4, epochs=2,
                           jit_compile=False)

    assert result.keys() == {"method", "model", "history", "best_epoch", "train_size", "trainable_params",
                             "seconds", "validation", "test"}
    assert result["method"] == "P-Tuning（冻结主干）"
    assert result["trainable_params"] == prompt_encoder_params(BERT_TEMPLATE, 32, "mlp")
    assert result["train_size"] == 4
    assert len(result["history"]["loss"]) == 2
    assert result["test"].keys() == {"accuracy", "roc_auc", "label_shares"}
    probabilities = label_probabilities(result["model"], small_tokenizer, split.texts, max_length=16)
    assert result["validation"]["accuracy"] == accuracy(split.labels, probabilities)
    for weight, value in zip(language_model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)


def test_train_ptuning_unfrozen_method_name(small_tokenizer, verbalizer):
    split = data.TextSplit([SHORT, LONG], [1, 0])
    keras.utils.set_random_seed(2)
    language_model = build_language_model(small_config("gpt2", small_tokenizer))
    result = train_ptuning(language_model, small_tokenizer, GPT_TEMPLATE, verbalizer, split, split,
                           reparameterization="none", freeze_backbone=False, max_length=12, batch_size=2,
                           epochs=1, jit_compile=False)
    assert result["method"] == "P-Tuning（解冻主干）"
    assert result["trainable_params"] == parameter_counts(result["model"])["total"]
    assert result["test"] is None


# ---- bad input ----

@pytest.mark.parametrize("template, error, message", [
    ("3,3", TypeError, "template 需要由 2 或 3 个非负整数组成的元组"),
    ((3,), ValueError, "收到 1 个"),
    ((1, 2, 3, 4), ValueError, "收到 4 个"),
    ((2, -1), ValueError, "第 1 项必须是非负整数，收到 -1"),
    ((True, 2), ValueError, "第 0 项必须是非负整数，收到 True"),
    ((2, 1.5), ValueError, "第 1 项必须是非负整数，收到 1.5"),
    ((0, 0, 0), ValueError, "一个伪 token 都没有"),
])
def test_encoder_rejects_bad_template(template, error, message):
    with pytest.raises(error, match=message):
        PromptEncoder(template, 8)


def test_encoder_rejects_unknown_reparameterization():
    with pytest.raises(ValueError, match="reparameterization 只能是.*收到 'gru'"):
        PromptEncoder((2, 2), 8, "gru")


def test_gpt_rejects_prompts_after_answer(small_tokenizer):
    with pytest.raises(ValueError, match="s3=2 必须为 0；请改为 \\(1, 1\\)，或.*\\(1, 3\\)"):
        encode_ptuning(small_tokenizer, [SHORT], (1, 1, 2), "gpt2")


def test_encoding_rejects_prompts_longer_than_max_length(small_tokenizer):
    # 1 + 6 + 2 = 9 positions before any text: [CLS], six pseudo tokens, [MASK] and [SEP].
    with pytest.raises(ValueError, match="共占 9 个位置，max_length=9 放不下评论；请把 max_length 调到至少 10"):
        encode_ptuning(small_tokenizer, [SHORT], (2, 2, 2), "bert", max_length=9)


def test_encoding_rejects_max_length_above_tokenizer_limit(small_tokenizer):
    with pytest.raises(ValueError, match="max_length=40 超过了模型的 max_positions=32"):
        encode_ptuning(small_tokenizer, [SHORT], (2, 2), "bert", max_length=40)


def test_encoding_rejects_empty_text(small_tokenizer):
    with pytest.raises(ValueError, match="第 1 条文本为空"):
        encode_ptuning(small_tokenizer, [SHORT, "  "], (2, 2), "bert")


def test_encoding_rejects_unknown_model_type(small_tokenizer):
    with pytest.raises(ValueError, match="model_type 只能是.*收到 't5'"):
        encode_ptuning(small_tokenizer, [SHORT], (2, 2), "t5")


def test_model_rejects_unknown_architecture(small_tokenizer, verbalizer):
    language_model = build_language_model(small_config("bert", small_tokenizer))
    language_model.config.model_type = "t5"
    with pytest.raises(ValueError, match="P-Tuning 只支持 GPT-2 和 BERT 结构.*'t5'"):
        PTuningModel(language_model, (2, 2), verbalizer)


def test_model_rejects_prompts_longer_than_max_positions(small_tokenizer, verbalizer):
    language_model = build_language_model(small_config("bert", small_tokenizer, max_positions=8))
    with pytest.raises(ValueError, match="共占 9 个位置，模型的 max_positions=8 放不下评论"):
        PTuningModel(language_model, (2, 2, 2), verbalizer)


def test_train_ptuning_rejects_max_length_above_model_limit(small_tokenizer, verbalizer):
    language_model = build_language_model(small_config("gpt2", small_tokenizer, max_positions=16))
    split = data.TextSplit([SHORT, LONG], [1, 0])
    with pytest.raises(ValueError, match="max_length=24 超过了模型的 max_positions=16"):
        train_ptuning(language_model, small_tokenizer, GPT_TEMPLATE, verbalizer, split, split, max_length=24)


# ---- a bundled model ----

@pytest.mark.skipif("tiny-gpt-zh" not in bundled_models(),
                    reason="the bundled tiny-gpt-zh checkpoint is not in peft_lessons/assets yet")
def test_frozen_ptuning_on_bundled_gpt():
    tokenizer = load_tokenizer("tiny-gpt-zh")
    verbalizer = Verbalizer({0: "差", 1: "好"}, tokenizer)
    sentiment = data.load_sentiment()
    validation = data.sample_split(sentiment.validation, 32, seed=0)
    language_model = load_llm("tiny-gpt-zh")
    before = snapshot(language_model.weights)

    result = train_ptuning(language_model, tokenizer, (3, 3), verbalizer, sentiment.train, validation, k=32,
                           max_length=48, batch_size=16, epochs=3, seed=0, jit_compile=False)
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0]
    assert result["trainable_params"] == prompt_encoder_params((3, 3), 256, "lstm")
    probabilities = label_probabilities(result["model"], tokenizer, validation.texts, max_length=48)
    assert result["validation"]["accuracy"] == accuracy(validation.labels, probabilities)
    for weight, value in zip(language_model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)
