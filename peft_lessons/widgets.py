"""Interactive panels for the notebooks, built from standard ipywidgets that work in versions 7.7 and 8.

A panel only reads its controls and calls the same package functions as the notebook cells.
Each panel redraws into an `HTML` widget from a `traitlets` observer, so its current text can
be read back from `panel.output.value`, both in JupyterLab and in a plain Python test.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from . import lora, ptuning, ptuning_v2

# Background colours of the token kinds in the input layout.
KIND_COLOURS = {"cls": "#d9d9d9", "sep": "#d9d9d9", "prompt": "#f4a582", "text": "#92c5de", "mask": "#b8e186"}
KIND_NAMES = {"cls": "特殊 token", "sep": "特殊 token", "prompt": "伪 token（提示）", "text": "评论文本",
              "mask": "[MASK]（答案位置）"}


def _token_html(token: str, kind: str) -> str:
    style = (f"background:{KIND_COLOURS[kind]};padding:1px 3px;margin:1px;border-radius:3px;"
             "display:inline-block;font-family:monospace")
    return f'<span style="{style}">{html.escape(token)}</span>'


def render_template_summary(summary: dict, model_name: str) -> str:
    """Render `ptuning.template_summary(...)` as HTML: the coloured input layout, the encoder shape and the counts."""
    tokens = "".join(_token_html(token, kind) for token, kind in summary["layout"])
    # Only the kinds this layout uses. A GPT-2 input has no [MASK] because it predicts the label word as the next token.
    present = {kind for _, kind in summary["layout"]}
    legend = " ".join(_token_html(name, kind) for kind, name in KIND_NAMES.items()
                      if kind in present and kind != "sep")
    if "mask" not in present:
        legend += "（最后一个位置的下一个 token 就是答案）"
    rows, hidden = summary["encoder_output_shape"]
    lines = [
        f"<b>{html.escape(model_name)} 的输入</b>（{len(summary['layout'])} 个位置）：",
        f"<div style='line-height:1.9'>{tokens}</div>",
        f"<div style='font-size:90%'>图例：{legend}</div>",
        f"提示编码器的输出形状：[{rows}, {hidden}]（{rows} 个伪 token，每个 {hidden} 维，与词向量同宽）<br>",
        f"提示编码器参数：{summary['encoder_params']:,}；语言模型参数：{summary['language_model_params']:,}；"
        f"编码器约为语言模型的 {summary['encoder_percent']:.3g}%",
    ]
    return "\n".join(lines)


class PTuningTemplatePanel:
    """Sliders for the P-Tuning template (s1, s2, s3), an architecture switch and the encoder choice.

    `models` maps a display name to `(language_model, tokenizer)`, for example
    `{"GPT": (gpt, gpt_tokenizer), "BERT": (bert, bert_tokenizer)}`. Every change redraws the
    input layout of `text`, the encoder's output shape and the parameter counts through
    `ptuning.template_summary`. GPT-2 reads left to right and predicts the next token, so the
    s3 slider is disabled for a GPT-2 model and counts as 0.
    """

    def __init__(self, models: dict, text: str, max_length: int = 64, max_tokens: int = 10):
        if not isinstance(models, dict) or not models:
            raise TypeError(f"models 需要非空字典 {{显示名: (语言模型, 分词器)}}，收到 {models!r}。")
        for name, pair in models.items():
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"models[{name!r}] 需要 (语言模型, 分词器) 二元组，收到 {type(pair).__name__}；"
                                f"例如 {{{name!r}: (load_llm('tiny-gpt-zh'), load_tokenizer('tiny-gpt-zh'))}}。")
        self.models = models
        self.text = text
        self.max_length = max_length
        self.s1 = widgets.IntSlider(value=3, min=0, max=max_tokens, description="s1")
        self.s2 = widgets.IntSlider(value=3, min=0, max=max_tokens, description="s2")
        self.s3 = widgets.IntSlider(value=0, min=0, max=max_tokens, description="s3")
        self.architecture = widgets.ToggleButtons(options=list(models), description="模型")
        self.reparameterization = widgets.Dropdown(options=list(ptuning.REPARAMETERIZATIONS), value="lstm",
                                                   description="重参数化")
        self.output = widgets.HTML()
        for control in (self.s1, self.s2, self.s3, self.architecture, self.reparameterization):
            control.observe(self._redraw, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.architecture, self.reparameterization]),
            widgets.HBox([self.s1, self.s2, self.s3]),
            self.output,
        ])
        self._redraw()

    @property
    def template(self) -> tuple[int, ...]:
        """The template the controls describe: `(s1, s2)` for GPT-2, `(s1, s2, s3)` for BERT."""
        language_model, _ = self.models[self.architecture.value]
        if language_model.config.model_type == "gpt2":
            return (self.s1.value, self.s2.value)
        return (self.s1.value, self.s2.value, self.s3.value)

    def _redraw(self, change=None) -> None:
        name = self.architecture.value
        language_model, tokenizer = self.models[name]
        self.s3.disabled = language_model.config.model_type == "gpt2"
        try:
            summary = ptuning.template_summary(language_model, tokenizer, self.text, self.template,
                                               self.reparameterization.value, self.max_length)
        except (TypeError, ValueError) as error:
            # A template the package rejects (for example all sliders at 0) shows its message in the panel.
            self.output.value = f"<span style='color:#b2182b'>{html.escape(str(error))}</span>"
            return
        self.output.value = render_template_summary(summary, name)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


TARGET_LABELS = {"query": "Wq", "key": "Wk", "value": "Wv", "output": "Wo", "ffn_intermediate": "FFN 1",
                 "ffn_output": "FFN 2"}


def render_lora_summary(summary: dict, model_name: str, shapes: dict) -> str:
    """Render `lora.lora_summary(...)` as HTML: a grid of layers and targets, and the counts."""
    header = "".join(f"<th style='padding:2px 6px'>{TARGET_LABELS[name]}<br><small>{shapes[name][0]}→"
                     f"{shapes[name][1]}</small></th>" for name in lora.TARGETS)
    body = []
    for layer in range(summary["num_layers"]):
        cells = []
        for name in lora.TARGETS:
            if name in summary["targets"]:
                cells.append(f"<td style='background:#f4a582;text-align:center'>r={summary['rank']}</td>")
            else:
                cells.append("<td style='background:#eeeeee;text-align:center;color:#999'>冻结</td>")
        body.append(f"<tr><th style='padding:2px 6px'>第 {layer} 层</th>{''.join(cells)}</tr>")
    grid = f"<table style='border-collapse:separate;border-spacing:2px'><tr><th></th>{header}</tr>{''.join(body)}</table>"
    per_layer = "，".join(f"{TARGET_LABELS[name]} {count:,}" for name, count in summary["per_layer"].items())
    return "\n".join([
        f"<b>{html.escape(model_name)}：LoRA 放在哪些矩阵上</b>（橙色为加了 LoRA 的矩阵，其余冻结）",
        grid,
        f"每层 LoRA 参数：{per_layer}（每个矩阵 rank × (d_in + d_out)）<br>",
        f"trainable params: {summary['trainable']:,} || all params: {summary['total']:,} "
        f"|| trainable%: {summary['trainable_percent']:.4f}（含分类头 {summary['head_params']:,} 个参数）<br>",
        f"adapter 文件中的张量约 {summary['adapter_bytes'] / 1024:.1f} KiB（float32）",
    ])


class LoRARankPanel:
    """A rank slider and one check box per target matrix, redrawn through `lora.lora_summary`.

    `models` maps a display name to a loaded language model. Every change redraws the
    trainable count and percentage, the adapter size and a grid of where the adapters sit.
    A rank above a matrix's smaller side, or no target at all, shows the package's error.
    """

    def __init__(self, models: dict, max_rank: int = 64):
        if not isinstance(models, dict) or not models:
            raise TypeError(f"models 需要非空字典 {{显示名: 语言模型}}，收到 {models!r}。")
        self.models = models
        self.rank = widgets.IntSlider(value=8, min=1, max=max_rank, description="rank")
        self.architecture = widgets.ToggleButtons(options=list(models), description="模型")
        self.targets = {name: widgets.Checkbox(value=name in ("query", "value"), description=TARGET_LABELS[name],
                                               indent=False, layout=widgets.Layout(width="80px"))
                        for name in lora.TARGETS}
        self.output = widgets.HTML()
        for control in (self.rank, self.architecture, *self.targets.values()):
            control.observe(self._redraw, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.architecture, self.rank]),
            widgets.HBox(list(self.targets.values())),
            self.output,
        ])
        self._redraw()

    @property
    def selected_targets(self) -> tuple[str, ...]:
        """The target names whose check box is ticked, in the order of `lora.TARGETS`."""
        return tuple(name for name, box in self.targets.items() if box.value)

    def _redraw(self, change=None) -> None:
        name = self.architecture.value
        language_model = self.models[name]
        try:
            summary = lora.lora_summary(language_model, self.selected_targets, self.rank.value)
        except (TypeError, ValueError) as error:
            self.output.value = f"<span style='color:#b2182b'>{html.escape(str(error))}</span>"
            return
        shapes = lora.target_shapes(language_model.config)
        self.output.value = render_lora_summary(summary, name, shapes)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def render_mask_html(mask, prompt_len: int, padding: int, max_prefix_columns: int = 20) -> str:
    """Draw a `[T, P+T]` attention mask as a grid: orange = may look at a prefix slot, blue = at a real token.

    A long prefix is shortened to its first and last columns around one "…" column. The
    hidden columns have the same pattern as the ones shown.
    """
    length = mask.shape[0]
    columns = list(range(mask.shape[1]))
    if prompt_len > max_prefix_columns:
        half = max_prefix_columns // 2
        columns = list(range(half)) + [None] + list(range(prompt_len - half, prompt_len + length))
    names = [f"P{c}" if c is not None and c < prompt_len else
             (f"t{c - prompt_len}" if c is not None else "…") for c in columns]
    header = "".join(f"<th style='font-size:70%;padding:0 1px'>{name}</th>" for name in names)
    rows = []
    for t in range(length):
        cells = []
        for c in columns:
            if c is None:
                cells.append("<td style='text-align:center'>…</td>")
                continue
            if not mask[t, c]:
                colour = "#eeeeee"
            elif c < prompt_len:
                colour = "#f4a582"
            else:
                colour = "#92c5de"
            cells.append(f"<td style='background:{colour};width:14px;height:14px'></td>")
        kind = "填充" if t >= length - padding else f"t{t}"
        rows.append(f"<tr><th style='font-size:70%;padding:0 3px'>{kind}</th>{''.join(cells)}</tr>")
    return (f"<table style='border-collapse:separate;border-spacing:1px'><tr><th></th>{header}</tr>"
            f"{''.join(rows)}</table>")


def render_prefix_summary(summary: dict, model_name: str, mask, prompt_len: int, padding: int) -> str:
    """Render `ptuning_v2.prefix_summary(...)` and a layer's attention mask as HTML."""
    shape_rows = "".join(
        f"<tr><td style='padding:1px 8px'>{index}. {html.escape(name)}</td>"
        f"<td style='padding:1px 8px;font-family:monospace'>[{', '.join(str(n) for n in shape)}]</td></tr>"
        for index, (name, shape) in enumerate(summary["shapes"], start=1))
    causal = "；GPT-2 的真实 token 之间仍是因果遮罩（只看自己和左边）" if mask[0, prompt_len + 1:].sum() == 0 else ""
    return "\n".join([
        f"<b>{html.escape(model_name)}：prompt_len = {prompt_len}</b><br>",
        f"提示编码器参数：{summary['encoder_params']:,}，是骨干模型 {summary['backbone_params']:,} 个参数的 "
        f"{summary['encoder_percent']:.3g}%<br>",
        "<b>形状的变化</b>（batch = 1；最后一步有 2 × num_layers 个这样的张量）：",
        f"<table>{shape_rows}</table>",
        f"<b>一层的注意力遮罩</b>：行是查询的 token，列是可以被看的位置。橙色 = 前缀，蓝色 = 真实 token，"
        f"灰色 = 看不到（最后 {padding} 个是填充）{causal}。",
        render_mask_html(mask, prompt_len, padding),
    ])


class PrefixLengthPanel:
    """A prompt_len slider and a reparameterization switch for P-Tuning v2.

    `models` maps a display name to a loaded language model (or a classifier built on one).
    Every change redraws three things. The first is the prompt encoder's size and its share
    of the backbone. The second is the tensor shape after each step from the encoder to one
    layer's key. The third is one layer's attention mask for a short example whose last
    `padding` tokens are padding. The
    panel gets them from `ptuning_v2.prefix_summary` and `ptuning_v2.prefix_attention_mask`.
    """

    def __init__(self, models: dict, max_prompt_len: int = 128, length: int = 8, padding: int = 2):
        if not isinstance(models, dict) or not models:
            raise TypeError(f"models 需要非空字典 {{显示名: 语言模型}}，收到 {models!r}。")
        self.models = models
        self.length = length
        self.padding = padding
        self.prompt_len = widgets.IntSlider(value=16, min=1, max=max_prompt_len, description="prompt_len")
        self.reparameterization = widgets.Checkbox(value=False, description="重参数化（MLP）")
        self.architecture = widgets.ToggleButtons(options=list(models), description="模型")
        self.output = widgets.HTML()
        self.summary = None  # the latest `prefix_summary` dict, for reading the numbers back in code
        self.mask = None  # the latest attention mask `[length, prompt_len + length]`
        for control in (self.prompt_len, self.reparameterization, self.architecture):
            control.observe(self._redraw, names="value")
        self.widget = widgets.VBox([
            self.architecture,
            widgets.HBox([self.prompt_len, self.reparameterization]),
            self.output,
        ])
        self._redraw()

    def _redraw(self, change=None) -> None:
        name = self.architecture.value
        model = self.models[name]
        prompt_len = self.prompt_len.value
        try:
            summary = ptuning_v2.prefix_summary(model, prompt_len, self.reparameterization.value)
            mask = ptuning_v2.prefix_attention_mask(model, prompt_len, self.length, self.padding)
        except (TypeError, ValueError) as error:
            self.summary = self.mask = None
            self.output.value = f"<span style='color:#b2182b'>{html.escape(str(error))}</span>"
            return
        self.summary, self.mask = summary, mask
        self.output.value = render_prefix_summary(summary, name, mask, prompt_len, self.padding)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
