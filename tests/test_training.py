import numpy as np
import pytest

from peft_lessons import data
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.models import SequenceClassifier
from peft_lessons.training import parameter_report, set_seed, train_classifier, warmup_cosine


@pytest.fixture(scope="module")
def sentiment():
    return data.load_sentiment()


def test_parameter_report_counts_frozen_backbone():
    classifier = SequenceClassifier(load_llm("tiny-bert-zh"), num_labels=2)
    classifier.backbone.trainable = False
    report = parameter_report(classifier)
    hidden = classifier.backbone.config.hidden_size
    assert report.trainable == hidden * 2 + 2
    assert report.total == classifier.backbone.count_params() + report.trainable
    assert "trainable%" in str(report)


def test_set_seed_makes_initialisation_repeatable():
    set_seed(3)
    first = SequenceClassifier(load_llm("tiny-gpt-zh"), 2).classifier.kernel.numpy()
    set_seed(3)
    second = SequenceClassifier(load_llm("tiny-gpt-zh"), 2).classifier.kernel.numpy()
    assert np.array_equal(first, second)


def test_set_seed_rejects_negative():
    with pytest.raises(ValueError, match="seed 必须是非负整数"):
        set_seed(-1)


def test_warmup_cosine_peaks_after_warmup():
    schedule = warmup_cosine(1e-3, total_steps=100, warmup_fraction=0.1)
    assert float(schedule(0)) == 0.0
    assert np.isclose(float(schedule(10)), 1e-3)
    assert float(schedule(100)) < 2e-4


def test_frozen_backbone_keeps_weights(sentiment):
    tokenizer = load_tokenizer("tiny-bert-zh")
    classifier = SequenceClassifier(load_llm("tiny-bert-zh"), num_labels=2)
    classifier.backbone.trainable = False
    before = [w.numpy().copy() for w in classifier.backbone.weights]
    head_before = classifier.classifier.kernel.numpy().copy()
    train = data.sample_split(sentiment.train, 128, seed=0)
    validation = data.sample_split(sentiment.validation, 64, seed=0)
    train_classifier(classifier, tokenizer, train, validation, max_length=32, epochs=1, learning_rate=1e-3, seed=0)
    after = [w.numpy() for w in classifier.backbone.weights]
    assert all(np.array_equal(b, a) for b, a in zip(before, after))
    assert not np.array_equal(head_before, classifier.classifier.kernel.numpy())


def test_fine_tuning_learns_sentiment(sentiment):
    tokenizer = load_tokenizer("tiny-gpt-zh")
    classifier = SequenceClassifier(load_llm("tiny-gpt-zh"), num_labels=2)
    train = data.sample_split(sentiment.train, 512, seed=0)
    validation = data.sample_split(sentiment.validation, 256, seed=0)
    result = train_classifier(classifier, tokenizer, train, validation, max_length=48, epochs=3,
                              learning_rate=3e-4, seed=0)
    assert result["validation"]["accuracy"] > 0.6
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
