import keras
import numpy as np
import pytest

from conftest import small_config
from peft_lessons import data
from peft_lessons.checkpoints import bundled_models, load_llm, load_tokenizer
from peft_lessons.models import build_language_model
from peft_lessons.prompting import (
    PETModel,
    Template,
    Verbalizer,
    accuracy,
    calibrate,
    evaluate_probabilities,
    label_prior,
    label_shares,
    prompt_sensitivity,
    roc_auc,
    score_labels,
    top_answers,
    train_classifier_baseline,
    train_pet,
)

# Every character of these prompts is in the small test vocabulary.
BERT_TEMPLATE = Template("{text}很{answer}。")
GPT_TEMPLATE = Template("{text}很{answer}")
REVIEWS = ["这本书写得很差", "今天天气很好", "不推荐购买"]


@pytest.fixture(scope="module")
def models(small_tokenizer):
    keras.utils.set_random_seed(0)
    return {model_type: build_language_model(small_config(model_type, small_tokenizer))
            for model_type in ("bert", "gpt2")}


@pytest.fixture(scope="module")
def verbalizer(small_tokenizer):
    return Verbalizer({0: "差", 1: "好"}, small_tokenizer)


def softmax(values):
    exp = np.exp(values - values.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def full_logits_at(model, features, positions):
    """Logits [N, V] at the given positions, from the model's own full forward pass."""
    inputs = {key: value for key, value in features.items() if key != "answer_positions"}
    logits = np.asarray(model(inputs), dtype=np.float64)  # [N, T, V]
    return logits[np.arange(len(positions)), positions]


# ---- templates ----

def test_template_renders_mask_for_bert():
    assert BERT_TEMPLATE.render("书写得很差", "bert") == "书写得很差很[MASK]。"


def test_template_renders_prefix_for_gpt():
    assert GPT_TEMPLATE.render("书写得很差", "gpt2") == "书写得很差很"


def test_bert_answer_position_is_mask(small_tokenizer):
    features = BERT_TEMPLATE.encode(small_tokenizer, REVIEWS, "bert", max_length=20)
    for row, position in enumerate(features["answer_positions"]):
        tokens = small_tokenizer.convert_ids_to_tokens(features["input_ids"][row])
        assert tokens[position] == "[MASK]"
        assert tokens[position + 1:position + 3] == ["。", "[SEP]"]


def test_bert_answer_before_text(small_tokenizer):
    features = Template("{answer}：{text}").encode(small_tokenizer, ["很好"], "bert", max_length=12)
    assert features["answer_positions"][0] == 1
    assert features["input_ids"][0, 1] == small_tokenizer.mask_id


def test_gpt_answer_position_is_last_prompt_token(small_tokenizer):
    features = GPT_TEMPLATE.encode(small_tokenizer, REVIEWS, "gpt2", max_length=20)
    for row, position in enumerate(features["answer_positions"]):
        ids = features["input_ids"][row]
        assert small_tokenizer.convert_ids_to_tokens(ids[position]) == ["很"]
        assert position == features["attention_mask"][row].sum() - 1
        assert small_tokenizer.sep_id not in ids.tolist()


def test_encoding_matches_rendered_prompt(small_tokenizer):
    features = BERT_TEMPLATE.encode(small_tokenizer, REVIEWS, "bert", max_length=20)
    rendered = [BERT_TEMPLATE.render(text, "bert") for text in REVIEWS]
    expected = small_tokenizer.encode_batch(rendered, max_length=20)
    assert np.array_equal(features["input_ids"], expected["input_ids"])
    assert np.array_equal(features["attention_mask"], expected["attention_mask"])


@pytest.mark.parametrize("model_type, template, tail", [
    ("bert", BERT_TEMPLATE, ["很", "[MASK]", "。", "[SEP]"]),
    ("gpt2", GPT_TEMPLATE, ["很"]),
])
def test_long_text_truncated_not_template(small_tokenizer, model_type, template, tail):
    long_review = "今天天气很好，我们去公园散步。" * 4
    features = template.encode(small_tokenizer, [long_review], model_type, max_length=12)
    tokens = small_tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    assert features["attention_mask"][0].sum() == 12
    assert tokens[-len(tail):] == tail
    assert tokens[1:4] == ["今", "天", "天"]
    answer_token = "[MASK]" if model_type == "bert" else "很"
    assert tokens[features["answer_positions"][0]] == answer_token


# ---- zero-shot scoring ----

@pytest.mark.parametrize("model_type, template", [("bert", BERT_TEMPLATE), ("gpt2", GPT_TEMPLATE)])
def test_score_labels_matches_manual_softmax(small_tokenizer, models, verbalizer, model_type, template):
    model = models[model_type]
    scores = score_labels(model, small_tokenizer, template, verbalizer, REVIEWS, max_length=20, batch_size=2)

    features = template.encode(small_tokenizer, REVIEWS, model_type, max_length=20)
    logits = full_logits_at(model, features, features["answer_positions"])
    word_ids = [small_tokenizer.token_to_id["差"], small_tokenizer.token_to_id["好"]]
    expected = softmax(logits[:, word_ids])
    np.testing.assert_allclose(scores.probabilities, expected, atol=1e-5)

    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(scores.word_log_probs, log_probs[:, word_ids], atol=1e-4)
    assert np.array_equal(scores.predictions, expected.argmax(axis=1))


def test_several_words_per_label_sum_probabilities(small_tokenizer, models):
    verbalizer = Verbalizer({0: ["差", "不"], 1: "好"}, small_tokenizer)
    model = models["bert"]
    scores = score_labels(model, small_tokenizer, BERT_TEMPLATE, verbalizer, REVIEWS, max_length=20)

    features = BERT_TEMPLATE.encode(small_tokenizer, REVIEWS, "bert", max_length=20)
    logits = full_logits_at(model, features, features["answer_positions"])
    word_probs = softmax(logits[:, [small_tokenizer.token_to_id[w] for w in ("差", "不", "好")]])
    expected = np.stack([word_probs[:, 0] + word_probs[:, 1], word_probs[:, 2]], axis=1)
    np.testing.assert_allclose(scores.probabilities, expected, atol=1e-5)


def test_pet_model_softmax_equals_scores(small_tokenizer, models):
    verbalizer = Verbalizer({0: ["差", "不"], 1: "好"}, small_tokenizer)
    model = models["gpt2"]
    scores = score_labels(model, small_tokenizer, GPT_TEMPLATE, verbalizer, REVIEWS, max_length=20)
    features = GPT_TEMPLATE.encode(small_tokenizer, REVIEWS, "gpt2", max_length=20)
    label_logits = np.asarray(PETModel(model, verbalizer)(features), dtype=np.float64)
    assert label_logits.shape == (3, 2)
    np.testing.assert_allclose(softmax(label_logits), scores.probabilities, atol=1e-5)


def test_top_answers_full_vocabulary(small_tokenizer, models):
    model = models["bert"]
    answers = top_answers(model, small_tokenizer, BERT_TEMPLATE, REVIEWS[0], top_k=3, max_length=20)
    features = BERT_TEMPLATE.encode(small_tokenizer, REVIEWS[:1], "bert", max_length=20)
    probabilities = softmax(full_logits_at(model, features, features["answer_positions"])[0])
    best = np.argsort(-probabilities)[:3]
    assert [token for token, _ in answers] == small_tokenizer.convert_ids_to_tokens(best.tolist())
    np.testing.assert_allclose([p for _, p in answers], probabilities[best], atol=1e-5)


def test_prompt_sensitivity_matches_scoring(small_tokenizer, models):
    split = data.TextSplit(REVIEWS + ["今天天气很差"], [0, 1, 0, 0])
    verbalizers = {"差/好": Verbalizer({0: "差", 1: "好"}, small_tokenizer),
                   "多词": Verbalizer({0: ["差", "不"], 1: ["好", "很"]}, small_tokenizer)}
    templates = [GPT_TEMPLATE, "{text}，天气{answer}"]
    rows = prompt_sensitivity(models["gpt2"], small_tokenizer, templates, verbalizers, split, max_length=20)
    assert len(rows) == 2 * 2 * 2
    for row in rows:
        template, verbalizer = Template(row["template"]), verbalizers[row["verbalizer"]]
        probabilities = score_labels(models["gpt2"], small_tokenizer, template, verbalizer, split.texts,
                                     max_length=20).probabilities
        prior = label_prior(models["gpt2"], small_tokenizer, template, verbalizer, max_length=20)
        np.testing.assert_allclose(row["prior"], prior, atol=1e-6)
        if row["calibrated"]:
            probabilities = calibrate(probabilities, prior)
        expected = evaluate_probabilities(split.labels, probabilities)
        assert row["accuracy"] == expected["accuracy"]
        assert row["roc_auc"] == pytest.approx(expected["roc_auc"])
        assert row["label_shares"] == expected["label_shares"]


def test_prompt_sensitivity_single_template(small_tokenizer, models, verbalizer):
    split = data.TextSplit(REVIEWS[:2], [0, 1])
    with pytest.raises(TypeError, match="templates 需要模板列表"):
        prompt_sensitivity(models["gpt2"], small_tokenizer, GPT_TEMPLATE, {"v": verbalizer}, split)


# ---- metrics ----

def test_metrics_hand_computed():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert accuracy(labels, probabilities) == 0.75
    assert roc_auc(labels, probabilities) == 0.75
    np.testing.assert_allclose(label_shares(probabilities), [0.75, 0.25])
    assert evaluate_probabilities(labels, probabilities) == {
        "accuracy": 0.75, "roc_auc": 0.75, "label_shares": [0.75, 0.25]}


def test_roc_auc_single_class_is_nan():
    assert np.isnan(roc_auc([1, 1], [[0.3, 0.7], [0.4, 0.6]]))


# ---- calibration ----

def test_calibrate_hand_computed():
    probabilities = np.array([[0.8, 0.2], [0.6, 0.4]])
    prior = np.array([0.7, 0.3])
    # 0.8/0.7 : 0.2/0.3 = 12 : 7, and 0.6/0.7 : 0.4/0.3 = 9 : 14.
    expected = np.array([[12 / 19, 7 / 19], [9 / 23, 14 / 23]])
    np.testing.assert_allclose(calibrate(probabilities, prior), expected, rtol=1e-12)


def test_calibrate_uniform_prior_changes_nothing():
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7]])
    np.testing.assert_allclose(calibrate(probabilities, [0.5, 0.5]), probabilities)


def test_label_prior_averages_content_free_texts(small_tokenizer, models, verbalizer):
    model = models["bert"]
    prior = label_prior(model, small_tokenizer, BERT_TEMPLATE, verbalizer, content_free_texts=("N/A", "不"),
                        max_length=16)

    rendered = [BERT_TEMPLATE.render(text, "bert") for text in ("N/A", "不")]
    features = small_tokenizer.encode_batch(rendered, max_length=16)
    positions = np.argmax(features["input_ids"] == small_tokenizer.mask_id, axis=1)
    logits = full_logits_at(model, features, positions)
    word_ids = [small_tokenizer.token_to_id["差"], small_tokenizer.token_to_id["好"]]
    np.testing.assert_allclose(prior, softmax(logits[:, word_ids]).mean(axis=0), atol=1e-5)


def test_label_prior_accepts_empty_text(small_tokenizer, models, verbalizer):
    prior = label_prior(models["gpt2"], small_tokenizer, GPT_TEMPLATE, verbalizer, max_length=16)
    assert prior.shape == (2,)
    assert np.isclose(prior.sum(), 1.0)


def test_calibrate_keeps_binary_auc():
    labels = np.array([0, 1, 0, 1, 1])
    positive = np.array([0.7, 0.9, 0.78, 0.75, 0.95])
    probabilities = np.stack([1 - positive, positive], axis=1)
    calibrated = calibrate(probabilities, [0.2, 0.8])
    assert roc_auc(labels, calibrated) == roc_auc(labels, probabilities)
    assert accuracy(labels, calibrated) != accuracy(labels, probabilities)


def test_calibrate_rejects_mismatched_prior():
    with pytest.raises(ValueError, match="不匹配"):
        calibrate(np.array([[0.5, 0.5]]), [0.2, 0.3, 0.5])


# ---- bad input ----

@pytest.mark.parametrize("pattern, message", [
    ("评论很{answer}。", "缺少 {text}"),
    ("{text}总之", "缺少 {answer}"),
    ("{text}{text}很{answer}", "含有 2 个 {text}"),
    ("{text}{answer}很{answer}", "含有 2 个 {answer}"),
    ("{text}很[MASK]{answer}", "直接写了 \\[MASK\\]"),
])
def test_template_rejects_bad_pattern(pattern, message):
    with pytest.raises(ValueError, match=message):
        Template(pattern)


def test_gpt_template_rejects_text_after_answer(small_tokenizer):
    with pytest.raises(ValueError, match="请改为 '\\{text\\}很\\{answer\\}'"):
        BERT_TEMPLATE.encode(small_tokenizer, REVIEWS, "gpt2")


def test_gpt_template_rejects_answer_before_text(small_tokenizer):
    with pytest.raises(ValueError, match="放在了 \\{text\\} 前面"):
        Template("{answer}：{text}").render("很好", "gpt2")


def test_template_too_long_for_max_length(small_tokenizer):
    with pytest.raises(ValueError, match="max_length 调到至少 6"):
        BERT_TEMPLATE.encode(small_tokenizer, REVIEWS, "bert", max_length=5)


def test_score_labels_rejects_empty_text(small_tokenizer, models, verbalizer):
    with pytest.raises(ValueError, match="第 1 条文本为空"):
        score_labels(models["bert"], small_tokenizer, BERT_TEMPLATE, verbalizer, ["很好", "  "])


@pytest.mark.parametrize("mapping, message", [
    ({0: "差"}, "缺少 \\[1\\]；"),
    ({1: "好", 2: "差"}, "缺少 \\[0\\]，多出 \\[2\\]；"),
    ({0: "差", 2: "好"}, "缺少 \\[1\\]，多出 \\[2\\]"),
    ({0: "差", 1: ["好", "差"]}, "'差'.*同时用于标签 0 和 1"),
    ({0: "差", 1: ["好", "好"]}, "标签词 '好' 在标签 1 里出现了两次"),
    ({0: "差", 1: "棒"}, "'棒' 不在词表中"),
    ({0: "差", 1: "很好"}, "'很好' 被切成了 2 个 token"),
    ({0: "差", 1: []}, "标签 1 没有标签词"),
])
def test_verbalizer_rejects_bad_mapping(small_tokenizer, mapping, message):
    with pytest.raises(ValueError, match=message):
        Verbalizer(mapping, small_tokenizer)


def test_train_pet_k_larger_than_train_split(small_tokenizer, models, verbalizer):
    split = data.TextSplit(REVIEWS[:2], [0, 1])
    with pytest.raises(ValueError, match="k=5 超过了 train_split 的 2 条样本"):
        train_pet(models["bert"], small_tokenizer, BERT_TEMPLATE, verbalizer, split, split, k=5)


def test_train_pet_rejects_k_zero(small_tokenizer, models, verbalizer):
    split = data.TextSplit(REVIEWS[:2], [0, 1])
    with pytest.raises(ValueError, match="k 必须是正整数，收到 0"):
        train_pet(models["bert"], small_tokenizer, BERT_TEMPLATE, verbalizer, split, split, k=0)


# ---- training ----

def test_pet_and_baseline_return_same_keys(small_tokenizer):
    split = data.TextSplit(REVIEWS + ["今天天气很差"], [0, 1, 0, 0])
    verbalizer = Verbalizer({0: "差", 1: "好"}, small_tokenizer)
    keras.utils.set_random_seed(1)
    pet = train_pet(build_language_model(small_config("bert", small_tokenizer)), small_tokenizer, BERT_TEMPLATE,
                    verbalizer, split, split, test_split=split, max_length=16, batch_size=4, epochs=1,
                    jit_compile=False)
    baseline = train_classifier_baseline(build_language_model(small_config("bert", small_tokenizer)),
                                         small_tokenizer, split, split, test_split=split, max_length=16,
                                         batch_size=4, epochs=1, jit_compile=False)
    assert pet.keys() == baseline.keys()
    assert pet["test"].keys() == baseline["test"].keys() == {"accuracy", "roc_auc", "label_shares"}
    assert pet["train_size"] == baseline["train_size"] == 4


@pytest.mark.skipif("tiny-bert-zh" not in bundled_models(),
                    reason="the bundled tiny-bert-zh checkpoint is not in peft_lessons/assets yet")
def test_pet_training_changes_zero_shot_result():
    tokenizer = load_tokenizer("tiny-bert-zh")
    template = Template("{text}总之很{answer}。")
    verbalizer = Verbalizer({0: "差", 1: "好"}, tokenizer)
    sentiment = data.load_sentiment()
    validation = data.sample_split(sentiment.validation, 32, seed=0)
    model = load_llm("tiny-bert-zh")
    before = score_labels(model, tokenizer, template, verbalizer, validation.texts, max_length=48).probabilities

    result = train_pet(model, tokenizer, template, verbalizer, sentiment.train, validation, k=32, max_length=48,
                       batch_size=16, epochs=3, learning_rate=1e-4, seed=0)
    after = score_labels(model, tokenizer, template, verbalizer, validation.texts, max_length=48).probabilities
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0]
    assert np.max(np.abs(after - before)) > 1e-2
    assert result["validation"]["accuracy"] == accuracy(validation.labels, after)
