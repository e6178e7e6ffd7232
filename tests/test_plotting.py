"""Tests for peft_lessons.plotting: Chinese text renders without missing-glyph warnings."""

import io
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from peft_lessons import plotting  # noqa: E402
from peft_lessons.plotting import (  # noqa: E402
    display_width,
    format_table,
    plot_parameter_counts,
    setup_chinese_font,
)

CJK_MARKERS = ("CJK", "Han", "Hei", "YaHei", "PingFang", "WenQuanYi")


def render_chinese_figure() -> list[str]:
    """Draw a figure with Chinese title, labels and negative ticks, save it as PNG and return the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure, ax = plt.subplots()
        ax.plot([-2, -1, 0, 1], [3, -1, 2, 0])
        ax.set_title("参数量对比：全量微调与 LoRA")
        ax.set_xlabel("训练步数")
        ax.set_ylabel("验证集准确率（％）")
        figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)
    return [str(warning.message) for warning in caught]


def glyph_warnings(messages: list[str]) -> list[str]:
    return [message for message in messages if "Glyph" in message or "missing from font" in message]


def test_chinese_figure_has_no_glyph_warnings():
    setup_chinese_font()
    assert glyph_warnings(render_chinese_figure()) == []


def test_default_font_warns_about_glyphs():
    # Control: the check above would catch a font without Chinese glyphs.
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        assert glyph_warnings(render_chinese_figure()) != []


def test_family_is_cjk():
    family = setup_chinese_font()
    assert any(marker in family for marker in CJK_MARKERS), family
    assert matplotlib.rcParams["font.sans-serif"][0] == family
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]
    assert matplotlib.rcParams["axes.unicode_minus"] is False


def test_setup_is_idempotent():
    first = setup_chinese_font()
    font_count = len(font_manager.fontManager.ttflist)
    sans_serif = list(matplotlib.rcParams["font.sans-serif"])
    second = setup_chinese_font()
    assert second == first
    assert len(font_manager.fontManager.ttflist) == font_count
    assert list(matplotlib.rcParams["font.sans-serif"]) == sans_serif


def test_mplfonts_file_is_found():
    path = plotting._mplfonts_font_path()
    assert path is not None
    assert path.name == "NotoSansCJKsc-Regular.otf"


def test_missing_font_raises_chinese_error(monkeypatch):
    monkeypatch.setattr(plotting, "_first_installed", lambda families: None)
    monkeypatch.setattr(plotting, "_mplfonts_font_path", lambda: None)
    with pytest.raises(RuntimeError, match="找不到可以显示中文的字体"):
        setup_chinese_font()


def test_format_table_aligns_chinese():
    table = format_table(["项目", "tiny-gpt-zh"], [["隐藏层维度 hidden_size", 256], ["词表大小", 4500]])
    lines = table.split("\n")
    assert len({display_width(line) for line in lines}) == 1
    assert lines[2].endswith("4,500")


def test_format_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="列数"):
        format_table(["a", "b"], [[1, 2, 3]])


def test_display_width_counts_cjk_twice():
    assert display_width("ab") == 2
    assert display_width("中文") == 4
    assert display_width("１２月") == 6


def test_parameter_chart_renders_without_glyph_warnings():
    setup_chinese_font()
    counts = {"gpt": {"嵌入层": 1_200_000, "Transformer 层": 3_100_000}, "bert": {"嵌入层": 1_300_000}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax = plot_parameter_counts(counts)
        ax.figure.savefig(io.BytesIO(), format="png")
        plt.close(ax.figure)
    assert glyph_warnings([str(w.message) for w in caught]) == []
    assert ax.get_title() == "各部分参数量"
    assert len(ax.patches) == 4  # 2 models x 2 parts, the missing part drawn as 0
    assert [label.get_text() for label in ax.get_yticklabels()] == ["嵌入层", "Transformer 层"]


def test_parameter_chart_rejects_empty_counts():
    with pytest.raises(ValueError, match="counts 为空"):
        plot_parameter_counts({})
