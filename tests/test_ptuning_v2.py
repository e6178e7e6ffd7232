import warnings

import keras
import numpy as np
import pytest
from keras import ops

from conftest import small_config
from peft_lessons import data
from peft_lessons.checkpoints import bundled_models, load_llm, load_tokenizer
from peft_lessons.models import TokenClassifier, build_language_model
from peft_lessons.ptuning_v2 import (
    MAX_PROMPT_LEN,
    STEP_NAMES,
    InputPromptSequenceClassifier,
    InputPromptTokenClassifier,
    PrefixSequenceClassifier,
    PrefixTokenClassifier,
    PromptEncoderV2,
    entity_scores,
    parameter_counts,
    predict_tags,
    prefix_shapes,
    prefix_steps,
    prefix_summary,
    prefixes_from_prompts,
    prompt_encoder_v2_params,
    train_full_ner,
    train_input_prompt_classifier,
    train_input_prompt_ner,
    train_prefix_classifier,
    train_prefix_ner,
)
from peft_lessons.training import count_params

# small_config: H = 32, L = 2 layers, nh = 4 heads, hd = 8, max_positions = 32.
HIDDEN, LAYERS, HEADS, HEAD_DIM = 32, 2, 4, 8
NUM_TAGS = len(data.NER_TAGS)


def tagged(text, entities):
    """Return (characters, BIO tags) for `text`, tagging each `entities` key with its entity type."""
    tags = ["O"] * len(text)
    for name, entity_type in entities.items():
        start = text.index(name)
        tags[start] = f"B-{entity_type}"
        for position in range(start + 1, start + len(name)):
            tags[position] = f"I-{entity_type}"
    return list(text), tags


# Every character is in the small test vocabulary.
SMALL_NER = [
    tagged("今天我们去公园散步", {"公园": "LOC"}),
    tagged("国家主席发表新年讲话", {"国家": "ORG"}),
    tagged("这本书写得很差", {}),
    tagged("我们去公园", {"我们": "PER", "公园": "LOC"}),
    tagged("天气很好", {}),
    tagged("新年讲话不推荐", {"新年": "ORG"}),
]


def fresh_language_model(tokenizer, model_type, seed=0, **changes):
    keras.utils.set_random_seed(seed)
    return build_language_model(small_config(model_type, tokenizer, **changes))


def snapshot(weights):
    return [np.array(weight.numpy()) for weight in weights]


def char_features(tokenizer, texts, max_length):
    rows = [tokenizer.encode_chars(list(text), max_length) for text in texts]
    return {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}


def fit_a_few_steps(model, tokenizer):
    texts = ["今天天气很好", "这本书写得很差", "我们去公园", "国家主席"]
    if isinstance(model, (PrefixSequenceClassifier, InputPromptSequenceClassifier)):
        features = tokenizer.encode_batch(texts, max_length=12)
        labels = np.array([1, 0, 1, 0], dtype=np.int32)
    else:
        features = char_features(tokenizer, texts, 12)
        labels = np.random.default_rng(0).integers(0, NUM_TAGS, size=(4, 12)).astype(np.int32)
    # Adam without weight decay, so that only weights with a gradient can change.
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, batch_size=4, epochs=2, verbose=0)


# ---- prompt encoder ----

# With P = 3, H = 32, L = 2 the output width is W = 2*L*H = 128:
#   without reparameterization: 3*128 = 384
#   with it: embedding 3*32 = 96, Dense(32, tanh) 32*32 + 32 = 1056, Dense(128) 32*128 + 128 = 4224
@pytest.mark.parametrize("reparameterization, expected_params", [(False, 384), (True, 96 + 1056 + 4224)])
def test_encoder_shape_and_param_count(small_tokenizer, reparameterization, expected_params):
    config = small_config("bert", small_tokenizer)
    encoder = PromptEncoderV2(3, config, reparameterization)
    prompts = encoder()
    assert tuple(prompts.shape) == (3, 2 * LAYERS * HIDDEN)
    assert prompts.dtype == "float32"
    assert count_params(encoder.weights) == expected_params
    assert prompt_encoder_v2_params(3, config, reparameterization) == expected_params


def test_encoder_mlp_matches_manual_formula(small_tokenizer):
    encoder = PromptEncoderV2(3, small_config("gpt2", small_tokenizer), reparameterization=True)
    table = encoder.embedding.embeddings.numpy()
    hidden = np.tanh(table @ encoder.mlp_hidden.kernel.numpy() + encoder.mlp_hidden.bias.numpy())
    expected = hidden @ encoder.mlp_output.kernel.numpy() + encoder.mlp_output.bias.numpy()
    np.testing.assert_allclose(np.asarray(encoder()), expected, atol=1e-6)


def test_encoder_stays_float32_under_mixed_precision(small_tokenizer):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3)
        logits = model(char_features(small_tokenizer, ["今天"], 8))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {weight.dtype for weight in model.prompt_encoder.weights} == {"float32"}
    assert logits.dtype == "float32"


# ---- from the encoder output to per-layer prefixes ----

def test_steps_have_listed_shapes(small_tokenizer):
    config = small_config("bert", small_tokenizer)
    prompts = PromptEncoderV2(5, config)()
    steps = prefix_steps(prompts, 3, config)
    expected = prefix_shapes(5, config, batch_size=3)

    assert [name for name, _ in expected] == list(STEP_NAMES)
    assert [name for name, _ in steps] == list(STEP_NAMES[:4])
    assert [tuple(tensor.shape) for _, tensor in steps] == [shape for _, shape in expected[:4]]
    assert expected[0][1] == (5, 128)
    assert expected[2][1] == (3, 5, 2 * LAYERS, HEADS, HEAD_DIM)
    assert expected[3][1] == (2 * LAYERS, 3, 5, HEADS, HEAD_DIM)

    prefixes = prefixes_from_prompts(prompts, 3, config)
    assert len(prefixes) == LAYERS
    for key, value in prefixes:
        assert tuple(key.shape) == expected[4][1] == (3, 5, HEADS, HEAD_DIM)
        assert tuple(value.shape) == expected[4][1]


def test_prefix_columns_map_to_layers(small_tokenizer):
    # Row p of the encoder output is [layer 0 key | layer 0 value | layer 1 key | layer 1 value],
    # each H = 32 wide and split into nh = 4 heads of hd = 8.
    config = small_config("gpt2", small_tokenizer)
    prompts = np.asarray(PromptEncoderV2(2, config)())
    prefixes = prefixes_from_prompts(prompts, 3, config)
    for layer, (key, value) in enumerate(prefixes):
        key_columns = prompts[:, 2 * layer * HIDDEN:(2 * layer + 1) * HIDDEN].reshape(2, HEADS, HEAD_DIM)
        value_columns = prompts[:, (2 * layer + 1) * HIDDEN:(2 * layer + 2) * HIDDEN].reshape(2, HEADS, HEAD_DIM)
        for row in range(3):
            np.testing.assert_array_equal(np.asarray(key)[row], key_columns)
            np.testing.assert_array_equal(np.asarray(value)[row], value_columns)


def test_prefix_summary_counts(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert")
    summary = prefix_summary(language_model, 3, reparameterization=False, batch_size=2)
    backbone_params = count_params(language_model.backbone.weights)
    assert summary["shapes"] == prefix_shapes(3, language_model.config, batch_size=2)
    assert summary["encoder_params"] == 384
    assert summary["backbone_params"] == backbone_params
    assert summary["encoder_percent"] == pytest.approx(100 * 384 / backbone_params)


# ---- prefixes inside the backbone ----

@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_each_layer_prefix_changes_output(small_tokenizer, model_type):
    language_model = fresh_language_model(small_tokenizer, model_type)
    backbone = language_model.backbone
    features = small_tokenizer.encode_batch(["今天天气很好"], max_length=10)
    prompts = PromptEncoderV2(3, language_model.config)()
    prefixes = prefixes_from_prompts(prompts, 1, language_model.config)
    reference = np.asarray(backbone(features, prefixes=prefixes))

    for layer in range(LAYERS):
        for part in (0, 1):  # 0: the key, 1: the value
            changed = [list(pair) for pair in prefixes]
            changed[layer][part] = changed[layer][part] + 1.0
            output = np.asarray(backbone(features, prefixes=[tuple(pair) for pair in changed]))
            assert np.max(np.abs(output - reference)) > 1e-4, (layer, part)


def cached_keys_values(backbone, context_ids):
    """Return each GPT-2 layer's keys and values `[1, P, nh, hd]` for the context tokens run alone."""
    length = context_ids.shape[1]
    x = backbone.token_embedding(context_ids) + backbone.position_embedding(np.arange(length)[None, :])
    pairs = []
    for block in backbone.blocks:
        normed = block.ln_1(x)
        attention = block.attention
        shape = (1, length, attention.num_heads, attention.head_dim)
        pairs.append((ops.reshape(attention.key(normed), shape), ops.reshape(attention.value(normed), shape)))
        x = block(x)
    return pairs


def test_gpt2_prefix_equals_key_value_cache(small_tokenizer):
    # The attention layer always lets real tokens see the prefix, so a prefix cannot be masked
    # out to compare against the plain model. This exact check takes its place. GPT-2 attends
    # left to right, so the keys and values of P context tokens, run alone, are a valid prefix.
    # Text with that prefix and positions P..P+T-1 must give the hidden states of the text in
    # the joined sequence. That covers every layer's keys and values, the score scaling and the
    # joint softmax over prefix and text.
    language_model = fresh_language_model(small_tokenizer, "gpt2")
    backbone = language_model.backbone
    ids = small_tokenizer.token_to_id
    context = np.array([[ids[char] for char in "国家主席"]], dtype=np.int32)
    text = np.array([[ids[char] for char in "发表讲话"]], dtype=np.int32)
    joined = backbone({"input_ids": np.concatenate([context, text], axis=1)})

    pad = small_tokenizer.pad_id
    padded_text = np.concatenate([text, [[pad, pad]]], axis=1)
    with_cache = backbone(
        {"input_ids": padded_text, "attention_mask": np.array([[1, 1, 1, 1, 0, 0]]),
         "position_ids": np.arange(4, 10)[None, :]},
        prefixes=cached_keys_values(backbone, context),
    )
    np.testing.assert_allclose(np.asarray(with_cache)[:, :4], np.asarray(joined)[:, 4:], atol=1e-5)


def test_real_tokens_keep_positions(small_tokenizer):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 4)
    features = char_features(small_tokenizer, ["今天天气"], 12)
    prefixes = model.prefixes(1)
    default = np.asarray(model(features))
    from_zero = model.task_model({**features, "position_ids": np.arange(12)[None, :]}, prefixes=prefixes)
    after_prefix = model.task_model({**features, "position_ids": np.arange(4, 16)[None, :]}, prefixes=prefixes)
    np.testing.assert_allclose(default, np.asarray(from_zero), atol=1e-6)
    assert np.max(np.abs(default - np.asarray(after_prefix))) > 1e-4


def test_prefix_longer_than_max_positions(small_tokenizer):
    # max_positions is 32. A 40-long prefix takes no positions, so a full 32-token input still fits.
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 40)
    features = char_features(small_tokenizer, ["今天天气很好"], 32)
    assert tuple(model(features).shape) == (1, 32, NUM_TAGS)


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_padding_keeps_token_logits(small_tokenizer, model_type):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, model_type), 3, reparameterization=True)
    alone = np.asarray(model(char_features(small_tokenizer, ["今天天气"], 6)))
    padded = np.asarray(model(char_features(small_tokenizer, ["今天天气", "这本书写得很差"], 16)))
    np.testing.assert_allclose(alone[0], padded[0, :6], atol=1e-5)


def test_sequence_classifier_output_shape(small_tokenizer):
    model = PrefixSequenceClassifier(fresh_language_model(small_tokenizer, "gpt2"), 3, num_labels=3)
    logits = model(small_tokenizer.encode_batch(["今天天气很好", "很差"], max_length=10))
    assert tuple(logits.shape) == (2, 3)


def test_input_prompts_inserted_after_cls(small_tokenizer):
    model = InputPromptTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3, reparameterization="none")
    features = char_features(small_tokenizer, ["今天天气"], 10)
    token_embeddings = np.asarray(model.backbone.embed_tokens(features["input_ids"]))
    prompts = np.asarray(model.prompt_encoder())[None, :, :]
    mask = features["attention_mask"]
    expanded = {
        "inputs_embeds": np.concatenate([token_embeddings[:, :1], prompts, token_embeddings[:, 1:]], axis=1),
        "attention_mask": np.concatenate([mask[:, :1], np.ones((1, 3), np.int32), mask[:, 1:]], axis=1),
    }
    # [1, 13, 7]: [CLS], the 3 prompts, then the other 9 input positions.
    expanded_logits = np.asarray(model.task_model(expanded))
    expected = np.concatenate([expanded_logits[:, :1], expanded_logits[:, 4:]], axis=1)
    logits = np.asarray(model(features))
    assert logits.shape == (1, 10, NUM_TAGS)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_sequence_input_prompts_keep_cls_first(small_tokenizer):
    model = InputPromptSequenceClassifier(fresh_language_model(small_tokenizer, "bert"), 3, reparameterization="none")
    features = small_tokenizer.encode_batch(["今天天气很好", "很差"], max_length=10)
    token_embeddings = np.asarray(model.backbone.embed_tokens(features["input_ids"]))
    prompts = np.broadcast_to(np.asarray(model.prompt_encoder())[None], (2, 3, HIDDEN))
    mask = features["attention_mask"]
    expanded = {
        "inputs_embeds": np.concatenate([token_embeddings[:, :1], prompts, token_embeddings[:, 1:]], axis=1),
        "attention_mask": np.concatenate([mask[:, :1], np.ones((2, 3), np.int32), mask[:, 1:]], axis=1),
    }
    logits = np.asarray(model(features))
    assert logits.shape == (2, 2)
    np.testing.assert_allclose(logits, np.asarray(model.task_model(expanded)), atol=1e-5)


# ---- training and parameter counts ----

@pytest.mark.parametrize("build, model_type", [
    (lambda lm: PrefixTokenClassifier(lm, 3), "bert"),
    (lambda lm: PrefixTokenClassifier(lm, 3, reparameterization=True), "gpt2"),
    (lambda lm: PrefixSequenceClassifier(lm, 3, reparameterization=True), "bert"),
    (lambda lm: PrefixSequenceClassifier(lm, 3), "gpt2"),
    (lambda lm: InputPromptTokenClassifier(lm, 3, reparameterization="mlp"), "bert"),
    (lambda lm: InputPromptSequenceClassifier(lm, 3, reparameterization="lstm"), "bert"),
], ids=["token-bert", "token-gpt2-mlp", "sequence-bert-mlp", "sequence-gpt2", "input-prompt-bert",
        "input-prompt-sequence-bert"])
def test_training_changes_only_prompts_and_head(small_tokenizer, build, model_type):
    model = build(fresh_language_model(small_tokenizer, model_type))
    backbone_before = snapshot(model.backbone.weights)
    trained_before = snapshot(model.prompt_encoder.weights + model.head.weights)
    fit_a_few_steps(model, small_tokenizer)

    for before, weight in zip(backbone_before, model.backbone.weights):
        np.testing.assert_array_equal(weight.numpy(), before, err_msg=weight.path)
    for before, weight in zip(trained_before, model.prompt_encoder.weights + model.head.weights):
        assert not np.array_equal(weight.numpy(), before), weight.path


@pytest.mark.parametrize("reparameterization", [False, True])
def test_parameter_counts_match_formula(small_tokenizer, reparameterization):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3,
                                  reparameterization=reparameterization)
    counts = parameter_counts(model)
    encoder = prompt_encoder_v2_params(3, model.backbone.config, reparameterization)
    head = HIDDEN * NUM_TAGS + NUM_TAGS
    backbone = count_params(model.backbone.weights)
    assert counts["prompt_encoder"] == encoder
    assert counts["head"] == head
    assert counts["backbone"] == backbone
    assert counts["total"] == count_params(model.weights) == encoder + head + backbone
    assert counts["trainable"] == encoder + head
    assert counts["prompt_encoder_percent_of_backbone"] == pytest.approx(100 * encoder / backbone)
    assert counts["trainable_percent"] == pytest.approx(100 * (encoder + head) / (encoder + head + backbone))


def test_train_prefix_classifier_with_xla(small_tokenizer):
    split = data.TextSplit(["很好", "今天天气很差", "不推荐购买", "今天天气很好"], [1, 0, 0, 1])
    language_model = fresh_language_model(small_tokenizer, "bert", seed=1)
    before = snapshot(language_model.weights)
    result = train_prefix_classifier(language_model, small_tokenizer, split, split, test_split=split, prompt_len=3,
                                     max_length=12, batch_size=4, epochs=2, jit_compile=True)

    assert result.keys() == {"method", "model", "history", "best_epoch", "train_size", "trainable_params",
                             "seconds", "validation", "test"}
    assert result["method"] == "P-Tuning v2"
    assert result["model"].jit_compile is True
    assert result["trainable_params"] == 384 + (HIDDEN * 2 + 2)
    assert result["train_size"] == 4
    assert len(result["history"]["loss"]) == 2
    assert result["test"].keys() == {"accuracy", "roc_auc", "label_shares"}
    for weight, value in zip(language_model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)


def test_train_input_prompt_classifier_result(small_tokenizer):
    split = data.TextSplit(["很好", "今天天气很差", "不推荐购买", "今天天气很好"], [1, 0, 0, 1])
    language_model = fresh_language_model(small_tokenizer, "bert", seed=1)
    before = snapshot(language_model.weights)
    result = train_input_prompt_classifier(language_model, small_tokenizer, split, split, test_split=split,
                                           prompt_len=3, reparameterization="none", max_length=12, batch_size=4,
                                           epochs=2)
    assert result["method"] == "输入层提示（P-Tuning v1 式）"
    assert isinstance(result["model"], InputPromptSequenceClassifier)
    assert result["trainable_params"] == 3 * HIDDEN + (HIDDEN * 2 + 2)
    assert len(result["history"]["loss"]) == 2
    for weight, value in zip(language_model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)
    with pytest.raises(ValueError, match=r"max_length=30 加上 prompt_len=4 超过了模型的 max_positions=32"):
        train_input_prompt_classifier(language_model, small_tokenizer, split, split, prompt_len=4, max_length=30)


def test_train_prefix_ner_result(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert", seed=2)
    result = train_prefix_ner(language_model, small_tokenizer, {"train": SMALL_NER, "validation": SMALL_NER[:3]},
                              prompt_len=3, max_length=14, batch_size=4, epochs=2, train_size=4, jit_compile=False)

    assert result.keys() == {"method", "model", "history", "best_epoch", "train_size", "trainable_params",
                             "seconds", "validation", "test"}
    assert result["method"] == "P-Tuning v2"
    assert result["train_size"] == 4
    assert result["trainable_params"] == 384 + (HIDDEN * NUM_TAGS + NUM_TAGS)
    history = result["history"]
    assert len(history["val_entity_f1"]) == len(history["loss"]) == 2
    assert result["best_epoch"] == int(np.argmax(history["val_entity_f1"])) + 1
    assert result["test"] is None
    predicted = predict_tags(result["model"], small_tokenizer, [chars for chars, _ in SMALL_NER[:3]], max_length=14)
    assert result["validation"] == entity_scores([tags for _, tags in SMALL_NER[:3]], predicted)


def test_train_full_ner_unfreezes_backbone(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert", seed=3)
    PrefixTokenClassifier(language_model, 3)  # freezes the backbone object
    embedding_before = np.array(language_model.backbone.token_embedding.embeddings.numpy())
    result = train_full_ner(language_model, small_tokenizer, (SMALL_NER, SMALL_NER[:2], SMALL_NER[2:4]),
                            max_length=14, batch_size=4, epochs=1, jit_compile=False)

    assert result["method"] == "全量微调"
    assert result["trainable_params"] == count_params(result["model"].weights)
    assert result["test"].keys() == {"overall", "PER", "LOC", "ORG"}
    assert not np.array_equal(language_model.backbone.token_embedding.embeddings.numpy(), embedding_before)


def test_train_input_prompt_ner_default_length(small_tokenizer):
    # max_positions 32 and 4 prompts leave max_length 28 by default.
    language_model = fresh_language_model(small_tokenizer, "gpt2", seed=4)
    result = train_input_prompt_ner(language_model, small_tokenizer, (SMALL_NER, SMALL_NER[:2]), prompt_len=4,
                                    reparameterization="none", batch_size=4, epochs=1, jit_compile=False)
    assert result["method"] == "输入层提示（P-Tuning v1 式）"
    assert result["trainable_params"] == 4 * HIDDEN + (HIDDEN * NUM_TAGS + NUM_TAGS)
    assert result["validation"]["overall"]["support"] == 2  # 公园 in sentence 0, 国家 in sentence 1


# ---- entity-level scores ----

@pytest.mark.parametrize("truth, prediction, expected", [
    # Exact match.
    (["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"], (1.0, 1.0, 1.0)),
    # A partly found name is one false positive and one miss: precision 0/1, recall 0/1.
    (["B-PER", "I-PER", "I-PER"], ["B-PER", "I-PER", "O"], (0.0, 0.0, 0.0)),
    # Right span, wrong type.
    (["B-PER", "I-PER"], ["B-LOC", "I-LOC"], (0.0, 0.0, 0.0)),
    # CoNLL reading: I-LOC without B-LOC starts an entity, so it matches B-LOC I-LOC.
    (["B-LOC", "I-LOC", "O"], ["I-LOC", "I-LOC", "O"], (1.0, 1.0, 1.0)),
    # An extra entity: precision 1/2, recall 1/1, F1 2/3.
    (["B-ORG", "I-ORG", "O", "O"], ["B-ORG", "I-ORG", "O", "B-PER"], (0.5, 1.0, 2 / 3)),
])
def test_entity_scores_hand_cases(truth, prediction, expected):
    overall = entity_scores([truth], [prediction])["overall"]
    assert (overall["precision"], overall["recall"], overall["f1"]) == pytest.approx(expected)


def test_type_change_after_b_splits_entity():
    # seqeval's default mode reads B-LOC I-ORG as a LOC (one character), then an ORG (one character).
    scores = entity_scores([["B-LOC", "B-ORG"]], [["B-LOC", "I-ORG"]])
    assert scores["overall"]["f1"] == 1.0


def test_entity_scores_per_type():
    # True: PER 张三 (0-1), LOC 北京 (3-4), PER 李四 (6-7). Predicted: PER 0-1 (correct),
    # LOC 3-3 (wrong end) and ORG 6-7 (wrong type). Correct 1 of 3 predicted and of 3 true.
    truth = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], ["O", "B-PER", "I-PER"]]
    prediction = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "B-ORG", "I-ORG"]]
    scores = entity_scores(truth, prediction)
    assert scores["overall"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "support": 3})
    assert scores["PER"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert scores["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_entity_scores_without_entities_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = entity_scores([["O", "O"]], [["O", "O"]])
    assert scores["overall"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize("truth, prediction, message", [
    ([["O"]], [["O"], ["O"]], "true_tags 有 1 个句子，predicted_tags 有 2 个"),
    ([["O", "O"]], [["O"]], "第 0 个句子的真实标签有 2 个，预测标签有 1 个"),
    ([["B-MISC"]], [["O"]], "true_tags 的第 0 个句子含有不在标签集中的标签 'B-MISC'"),
    ([["O"]], [[3]], "predicted_tags 的第 0 个句子含有不在标签集中的标签 3"),
    ([], [], "true_tags 为空"),
])
def test_entity_scores_rejects_bad_input(truth, prediction, message):
    with pytest.raises(ValueError, match=message):
        entity_scores(truth, prediction)


def test_entity_scores_names_flat_lists_and_pairs():
    # A flat tag list and (characters, tags) pairs are the two likely mix-ups. Each error message
    # names what was passed instead of listing single letters as unknown tags.
    with pytest.raises(TypeError, match="收到字符串 'B-LOC'"):
        entity_scores(["B-LOC", "O"], ["B-LOC", "O"])
    pair = (list("上海"), ["B-LOC", "I-LOC"])
    with pytest.raises(TypeError, match="这里只要标签列表"):
        entity_scores([pair], [["B-LOC", "I-LOC"]])


# ---- predicting tags ----

def test_predict_tags_follows_logits(small_tokenizer):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3)
    sentences = ["今天天气", list("我们去公园散步"), "很好"]
    tags = predict_tags(model, small_tokenizer, sentences, max_length=12, batch_size=2)

    logits = np.asarray(model(char_features(small_tokenizer, sentences, 12)))
    for row, sentence in enumerate(sentences):
        expected = [data.NER_TAGS[index] for index in logits[row, 1:1 + len(sentence)].argmax(axis=-1)]
        assert tags[row] == expected


def test_predict_tags_accepts_full_model(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "gpt2")
    model = TokenClassifier(language_model, num_labels=NUM_TAGS)
    tags = predict_tags(model, small_tokenizer, ["今天天气", "很好"], max_length=8)
    assert [len(row) for row in tags] == [4, 2]
    assert all(tag in data.NER_TAGS for row in tags for tag in row)


def test_predict_tags_rejects_wrong_label_count(small_tokenizer):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3, num_labels=5)
    with pytest.raises(ValueError, match="模型输出 5 个标签，而 NER 标签集 NER_TAGS 有 7 个"):
        predict_tags(model, small_tokenizer, ["今天"], max_length=8)


def test_predict_tags_rejects_long_sentence(small_tokenizer):
    model = PrefixTokenClassifier(fresh_language_model(small_tokenizer, "bert"), 3)
    with pytest.raises(ValueError, match=r"第 1 个句子有 7 个字符，超过 max_length - 2 = 6.*load_ner\(max_chars=6\)"):
        predict_tags(model, small_tokenizer, ["今天", "这本书写得很差"], max_length=8)


# ---- bad input ----

@pytest.mark.parametrize("prompt_len", [0, -2, 2.5, True, "8", MAX_PROMPT_LEN + 1])
def test_encoder_rejects_bad_prompt_len(small_tokenizer, prompt_len):
    with pytest.raises(ValueError, match=f"prompt_len.*{prompt_len!r}"):
        PromptEncoderV2(prompt_len, small_config("bert", small_tokenizer))


def test_rejected_model_leaves_backbone_trainable(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert")
    with pytest.raises(ValueError, match="prompt_len 必须是正整数"):
        PrefixTokenClassifier(language_model, 0)
    assert language_model.backbone.trainable


def test_parameter_counts_rejects_full_model(small_tokenizer):
    model = TokenClassifier(fresh_language_model(small_tokenizer, "bert"), num_labels=NUM_TAGS)
    with pytest.raises(TypeError, match="收到 TokenClassifier；完整微调的模型请用 training.parameter_report"):
        parameter_counts(model)


def test_encoder_rejects_string_reparameterization(small_tokenizer):
    with pytest.raises(TypeError, match="reparameterization 必须是 True 或 False，收到 'mlp'"):
        PromptEncoderV2(4, small_config("bert", small_tokenizer), reparameterization="mlp")


def test_encoder_rejects_indivisible_heads(small_tokenizer):
    config = small_config("bert", small_tokenizer)
    config.num_heads = 3  # ModelConfig checks this only when it is created
    with pytest.raises(ValueError, match="hidden_size=32 不能被 num_heads=3 整除"):
        PromptEncoderV2(4, config)


def test_steps_reject_prompts_of_other_model(small_tokenizer):
    prompts = PromptEncoderV2(2, small_config("bert", small_tokenizer, num_layers=3))()
    with pytest.raises(ValueError, match=r"prompts 的形状 \(2, 192\) 与骨干模型不匹配：应为 \[prompt_len, 128\]"):
        prefixes_from_prompts(prompts, 1, small_config("bert", small_tokenizer))


def test_backbone_rejects_mismatched_prefixes(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert")
    features = small_tokenizer.encode_batch(["今天"], max_length=6)
    wrong_heads = ops.zeros((1, 2, 2, 16))
    with pytest.raises(ValueError, match=r"prefix_key 的形状 \(1, 2, 2, 16\) 与本层不匹配.*\[batch, prefix_len, 4, 8\]"):
        language_model.backbone(features, prefixes=[(wrong_heads, wrong_heads)] * LAYERS)
    right = ops.zeros((1, 2, HEADS, HEAD_DIM))
    with pytest.raises(ValueError, match="prefixes 有 1 组，而模型有 2 层"):
        language_model.backbone(features, prefixes=[(right, right)])


@pytest.mark.parametrize("labels, num_labels, message", [
    ([0, 3], 2, r"train_split 中有标签 \[3\]，而 num_labels=2 只允许 0 到 1"),
    ([0, -1], None, r"收到负数标签 \[-1\]"),
])
def test_train_prefix_classifier_rejects_bad_labels(small_tokenizer, labels, num_labels, message):
    language_model = fresh_language_model(small_tokenizer, "bert")
    train = data.TextSplit(["很好", "很差"], labels)
    validation = data.TextSplit(["很好", "很差"], [0, 1])
    with pytest.raises(ValueError, match=message):
        train_prefix_classifier(language_model, small_tokenizer, train, validation, num_labels=num_labels,
                                max_length=8)


@pytest.mark.parametrize("splits, message", [
    (([(list("今天"), ["O", "B-MISC"])], SMALL_NER), "train 的第 0 个句子含有不在标签集中的标签 'B-MISC'"),
    ((SMALL_NER, [(list("今天"), ["O"])]), "validation 的第 0 个句子有 2 个字符却有 1 个标签"),
    ((SMALL_NER, SMALL_NER, [tagged("今天天气很好我们去公园散步", {})]),
     r"test 的第 0 个句子有 13 个字符，超过 max_length - 2 = 12.*load_ner\(max_chars=12\)"),
    ({"train": SMALL_NER}, r"NER 数据字典缺少 \['validation'\]"),
])
def test_train_prefix_ner_rejects_bad_data(small_tokenizer, splits, message):
    language_model = fresh_language_model(small_tokenizer, "bert")
    with pytest.raises(ValueError, match=message):
        train_prefix_ner(language_model, small_tokenizer, splits, prompt_len=2, max_length=14)


def test_train_prefix_ner_rejects_large_train_size(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert")
    with pytest.raises(ValueError, match="train_size=7 超过了训练集的句子数 6"):
        train_prefix_ner(language_model, small_tokenizer, (SMALL_NER, SMALL_NER), prompt_len=2, max_length=14,
                         train_size=7)


def test_input_prompts_reject_length_beyond_positions(small_tokenizer):
    language_model = fresh_language_model(small_tokenizer, "bert")
    with pytest.raises(ValueError, match=r"max_length=30 加上 prompt_len=4 超过了模型的 max_positions=32.*"
                                         r"不超过 28 的值.*load_ner\(max_chars=26\)"):
        train_input_prompt_ner(language_model, small_tokenizer, (SMALL_NER, SMALL_NER), prompt_len=4, max_length=30)
    model = InputPromptTokenClassifier(language_model, 4, reparameterization="none")
    with pytest.raises(ValueError, match="输入有 30 个位置，加上 4 个输入层提示超过了 max_positions=32"):
        model(char_features(small_tokenizer, ["今天"], 30))


# ---- a bundled model ----

BUNDLED_NER = [
    tagged("江泽民在北京会见了外宾。", {"江泽民": "PER", "北京": "LOC"}),
    tagged("新华社记者李明报道。", {"新华社": "ORG", "李明": "PER"}),
    tagged("国务院总理李鹏出席会议。", {"国务院": "ORG", "李鹏": "PER"}),
    tagged("王刚去年去了广州和深圳。", {"王刚": "PER", "广州": "LOC", "深圳": "LOC"}),
    tagged("中国银行在香港开设分行。", {"中国银行": "ORG", "香港": "LOC"}),
    tagged("张华和刘洋都在天津工作。", {"张华": "PER", "刘洋": "PER", "天津": "LOC"}),
    tagged("外交部发言人回答了提问。", {"外交部": "ORG"}),
    tagged("上海的冬天不太冷。", {"上海": "LOC"}),
]


@pytest.mark.skipif("tiny-bert-zh" not in bundled_models(),
                    reason="the bundled tiny-bert-zh checkpoint is not in peft_lessons/assets yet")
def test_prefix_ner_on_bundled_bert():
    tokenizer = load_tokenizer("tiny-bert-zh")
    language_model = load_llm("tiny-bert-zh")
    before = snapshot(language_model.weights)

    result = train_prefix_ner(language_model, tokenizer, (BUNDLED_NER, BUNDLED_NER[:4]), prompt_len=8,
                              max_length=16, batch_size=8, epochs=3, patience=3, seed=0, jit_compile=False)
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0]
    config = language_model.config
    head = config.hidden_size * NUM_TAGS + NUM_TAGS
    assert result["trainable_params"] == prompt_encoder_v2_params(8, config) + head == 8 * 2 * 6 * 256 + head
    assert result["validation"]["overall"]["support"] == 9  # entities in the first four sentences
    for weight, value in zip(language_model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)


def test_prefix_attention_mask_matches_layer(small_tokenizer):
    from peft_lessons.ptuning_v2 import prefix_attention_mask

    for model_type in ("bert", "gpt2"):
        model = fresh_language_model(small_tokenizer, model_type)
        mask = prefix_attention_mask(model, prompt_len=2, length=4, padding=1)
        assert mask.shape == (4, 6)
        assert mask[:, :2].all()  # every query may attend to the prefix
        assert not mask[:, 5].any()  # no query may attend to the padded token
        if model_type == "bert":
            assert mask[:, 2:5].all()
        else:
            assert np.array_equal(mask[:, 2:5], np.tril(np.ones((4, 3), dtype=bool)))


@pytest.mark.parametrize("length, padding", [(0, 0), (4, 4), (4, -1), (4, 1.5)])
def test_prefix_attention_mask_rejects_bad_sizes(small_tokenizer, length, padding):
    from peft_lessons.ptuning_v2 import prefix_attention_mask

    model = fresh_language_model(small_tokenizer, "bert")
    with pytest.raises(ValueError, match="length|padding"):
        prefix_attention_mask(model, prompt_len=2, length=length, padding=padding)
