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
    assert f"{summary['encoder_percent']:.3g}%" in panel.output.value  # three significant digits, also below 0.1%
    legend = panel.output.value.split("图例")[1]
    assert "[MASK]" not in legend
    assert "下一个 token" in legend


def test_panel_redraws_bert_and_reparameterization(models):
    panel = PTuningTemplatePanel(models, REVIEW)
    panel.architecture.value = "BERT"
    panel.s1.value, panel.s2.value, panel.s3.value = 1, 0, 2
    assert not panel.s3.disabled
    assert tokens_shown(panel) == ["[CLS]", "[P0]", *REVIEW, "[MASK]", "[P1]", "[P2]", "[SEP]"]
    assert "[MASK]（答案位置）" in panel.output.value.split("图例")[1]
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


# ---- LoRA rank panel ----

def test_lora_summary_matches_applied_model(models):
    from peft_lessons import lora
    from peft_lessons.models import SequenceClassifier
    from peft_lessons.training import parameter_report

    model = load_llm("tiny-bert-zh")
    summary = lora.lora_summary(model, ("query", "value", "ffn_output"), rank=4)
    classifier = SequenceClassifier(model, num_labels=2)
    lora.apply_lora(classifier, targets=("query", "value", "ffn_output"), rank=4)
    report = parameter_report(classifier)
    assert summary["trainable"] == report.trainable
    assert summary["total"] == report.total
    assert summary["lora_params"] == lora.count_lora_params(classifier)
    assert summary["adapter_bytes"] == lora.adapter_size_bytes(classifier)


def test_rank_panel_redraws_counts(models):
    from peft_lessons import lora
    from peft_lessons.widgets import LoRARankPanel

    panel = LoRARankPanel({"GPT": models["GPT"][0], "BERT": models["BERT"][0]})
    panel.architecture.value = "BERT"
    panel.rank.value = 2
    panel.targets["key"].value = True
    assert panel.selected_targets == ("query", "key", "value")
    summary = lora.lora_summary(models["BERT"][0], ("query", "key", "value"), rank=2)
    assert f"trainable params: {summary['trainable']:,}" in panel.output.value
    assert f"trainable%: {summary['trainable_percent']:.4f}" in panel.output.value
    assert panel.output.value.count(">r=2<") == 3 * summary["num_layers"]


def test_rank_panel_shows_errors(models):
    from peft_lessons.widgets import LoRARankPanel

    panel = LoRARankPanel({"GPT": models["GPT"][0]}, max_rank=512)
    for box in panel.targets.values():
        box.value = False
    assert "targets 为空" in panel.output.value
    panel.targets["query"].value = True
    panel.rank.value = 300
    assert "rank 必须是 1 到 min(d_in, d_out)=256" in panel.output.value


def test_panel_rejects_model_without_tokenizer(models):
    gpt, _ = models["GPT"]
    with pytest.raises(TypeError, match="二元组"):
        PTuningTemplatePanel({"GPT": gpt}, REVIEW)


# ---- P-Tuning v2 prompt_len panel ----

def mask_cells(panel):
    """The colours of the mask grid, one list per query row."""
    table = panel.output.value.split("一层的注意力遮罩")[1]
    return [re.findall(r"background:(#[0-9a-f]{6})", row) for row in table.split("<tr>")[2:]]


def test_prefix_panel_redraws_counts_and_shapes(models):
    from peft_lessons import ptuning_v2
    from peft_lessons.widgets import PrefixLengthPanel

    bert = models["BERT"][0]
    panel = PrefixLengthPanel({"BERT": bert})
    config = bert.config
    for prompt_len, reparameterization in ((4, False), (64, True)):
        panel.prompt_len.value = prompt_len
        panel.reparameterization.value = reparameterization
        expected = ptuning_v2.prompt_encoder_v2_params(prompt_len, config, reparameterization)
        assert f"提示编码器参数：{expected:,}" in panel.output.value
        width = 2 * config.num_layers * config.hidden_size
        assert f"[{prompt_len}, {width}]" in panel.output.value
        assert f"[{2 * config.num_layers}, 1, {prompt_len}, {config.num_heads}, {config.head_dim}]" in panel.output.value
    assert ptuning_v2.prompt_encoder_v2_params(64, config, True) > ptuning_v2.prompt_encoder_v2_params(64, config, False)
    assert panel.summary == ptuning_v2.prefix_summary(bert, 64, True)
    assert panel.mask.shape == (panel.length, 64 + panel.length)


def test_prefix_panel_mask_shows_prefix_columns(models):
    from peft_lessons.widgets import PrefixLengthPanel

    panel = PrefixLengthPanel({"GPT": models["GPT"][0], "BERT": models["BERT"][0]}, length=6, padding=2)
    panel.architecture.value = "BERT"
    panel.prompt_len.value = 3
    rows = mask_cells(panel)
    assert len(rows) == 6
    prefix, real = "#f4a582", "#92c5de"
    # BERT: every query may attend to the 3 prefix slots and the 4 real tokens, never to the 2 padded ones.
    assert all(row == [prefix] * 3 + [real] * 4 + ["#eeeeee"] * 2 for row in rows)
    panel.architecture.value = "GPT"
    rows = mask_cells(panel)
    # GPT-2: the prefix is visible to every token, the real tokens only up to the query itself.
    assert rows[0] == [prefix] * 3 + [real] + ["#eeeeee"] * 5
    assert rows[3] == [prefix] * 3 + [real] * 4 + ["#eeeeee"] * 2
    assert "因果遮罩" in panel.output.value
    panel.prompt_len.value = 100  # shortened to 20 prefix columns around one "…"
    assert mask_cells(panel)[0][:20] == [prefix] * 20
    assert ">P99<" in panel.output.value
    assert ">P50<" not in panel.output.value


def test_prefix_panel_rejects_empty_models():
    from peft_lessons.widgets import PrefixLengthPanel

    with pytest.raises(TypeError, match="models 需要非空字典"):
        PrefixLengthPanel({})
