import re

import pytest

from peft_lessons import ptuning
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.widgets import PTuningTemplatePanel

REVIEW = "物流很快质量不错"


@pytest.fixture(scope="module")
def models():
    return {"GPT": (load_llm("tiny-gpt-zh"), load_tokenizer("tiny-gpt-zh")),
            "BERT": (load_llm("tiny-bert-zh"), load_tokenizer("tiny-bert-zh"))}


def tokens_shown(panel):
    """The token texts of the coloured input layout, in order."""
    layout_html = panel.output.value.split("图例")[0]
    return re.findall(r"<span[^>]*>([^<]*)</span>", layout_html)


def test_template_summary_counts(models):
    model, tokenizer = models["BERT"]
    summary = ptuning.template_summary(model, tokenizer, REVIEW, (2, 1, 1), "mlp")
    hidden = model.config.hidden_size
    assert summary["encoder_output_shape"] == (4, hidden)
    assert summary["encoder_params"] == 4 * hidden + 2 * (hidden * hidden + hidden)
    assert summary["language_model_params"] == model.count_params()
    assert summary["encoder_percent"] == pytest.approx(100 * summary["encoder_params"] / model.count_params())
    kinds = [kind for _, kind in summary["layout"]]
    assert kinds == ["cls", "prompt", "prompt"] + ["text"] * len(REVIEW) + ["prompt", "mask", "prompt", "sep"]


def test_panel_redraws_gpt_layout(models):
    panel = PTuningTemplatePanel(models, REVIEW)
    panel.architecture.value = "GPT"
    panel.s1.value = 2
    panel.s2.value = 1
    panel.s3.value = 4  # ignored for GPT-2
    assert panel.s3.disabled
    assert panel.template == (2, 1)
    assert tokens_shown(panel) == ["[CLS]", "[P0]", "[P1]", *REVIEW, "[P2]"]
    model, tokenizer = models["GPT"]
    summary = ptuning.template_summary(model, tokenizer, REVIEW, (2, 1), "lstm")
    assert f"[3, {model.config.hidden_size}]" in panel.output.value
    assert f"{summary['encoder_params']:,}" in panel.output.value
    assert f"{summary['encoder_percent']:.2f}%" in panel.output.value


def test_panel_redraws_bert_and_reparameterization(models):
    panel = PTuningTemplatePanel(models, REVIEW)
    panel.architecture.value = "BERT"
    panel.s1.value, panel.s2.value, panel.s3.value = 1, 0, 2
    assert not panel.s3.disabled
    assert tokens_shown(panel) == ["[CLS]", "[P0]", *REVIEW, "[MASK]", "[P1]", "[P2]", "[SEP]"]
    model, tokenizer = models["BERT"]
    for reparameterization in ptuning.REPARAMETERIZATIONS:
        panel.reparameterization.value = reparameterization
        expected = ptuning.prompt_encoder_params((1, 0, 2), model.config.hidden_size, reparameterization)
        assert f"提示编码器参数：{expected:,}" in panel.output.value


def test_panel_shows_error_for_empty_template(models):
    panel = PTuningTemplatePanel(models, REVIEW)
    panel.s1.value, panel.s2.value, panel.s3.value = 0, 0, 0
    assert "一个伪 token 都没有" in panel.output.value
    panel.s2.value = 1
    assert "一个伪 token 都没有" not in panel.output.value


def test_panel_rejects_empty_models():
    with pytest.raises(TypeError, match="models 需要非空字典"):
        PTuningTemplatePanel({}, REVIEW)
