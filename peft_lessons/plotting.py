"""Matplotlib set-up and small display helpers for the notebooks: a CJK font, text tables, parameter charts.

Matplotlib's default font (DejaVu Sans) has no Chinese glyphs, so every Chinese title would
render as empty boxes with a "Glyph ... missing from font" warning. Call `setup_chinese_font()`
once before plotting.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager

# System families tried first, best first. A .ttc collection such as Debian's NotoSansCJK-Regular.ttc
# may be registered under its first face's name, "Noto Sans CJK JP", which still covers the CJK ideographs.
PREFERRED_SYSTEM_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans CJK JP",
    "Source Han Sans",
)
# Other common CJK families (macOS, Windows, Debian), used only when mplfonts is not installed.
FALLBACK_SYSTEM_FAMILIES = ("PingFang SC", "Microsoft YaHei", "SimHei", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei")
# Font file shipped inside the mplfonts package (a dependency of this project).
MPLFONTS_FONT = ("fonts", "NotoSansCJKsc-Regular.otf")


def _installed_families() -> set[str]:
    return {entry.name for entry in font_manager.fontManager.ttflist}


def _first_installed(families) -> str | None:
    installed = _installed_families()
    return next((family for family in families if family in installed), None)


def _mplfonts_font_path() -> Path | None:
    """Return the Noto Sans CJK SC file inside the installed mplfonts package, or None."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MPLFONTS_FONT)
    return path if path.is_file() else None


def _register_font_file(path: Path) -> str:
    """Add a font file to matplotlib's font manager (once) and return its family name."""
    registered = {Path(entry.fname).resolve() for entry in font_manager.fontManager.ttflist}
    if path.resolve() not in registered:
        font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def find_chinese_font() -> str:
    """Return the family name of a CJK font, registering the mplfonts file with matplotlib if it is used.

    Order: a system Noto Sans CJK / Source Han Sans family, then the mplfonts file, then another
    common system CJK family. Raises RuntimeError when none is available.
    """
    family = _first_installed(PREFERRED_SYSTEM_FAMILIES)
    if family is not None:
        return family
    path = _mplfonts_font_path()
    if path is not None:
        return _register_font_file(path)
    family = _first_installed(FALLBACK_SYSTEM_FAMILIES)
    if family is not None:
        return family
    raise RuntimeError(
        "找不到可以显示中文的字体，图中的中文会显示成方框。"
        "请运行 `pip install mplfonts`（它自带 Noto Sans CJK SC），"
        "或在系统中安装 Noto Sans CJK（例如 Debian/Ubuntu 上 `apt-get install fonts-noto-cjk`），然后重启内核。"
    )


def setup_chinese_font() -> str:
    """Make matplotlib render Chinese text and return the CJK font family it now uses.

    The family goes first in `font.sans-serif`, so Chinese and Latin text both use it.
    `axes.unicode_minus` is turned off so that negative tick labels use the ASCII hyphen-minus
    instead of U+2212, which some CJK fonts (SimHei among them) lack. Calling it again changes nothing.
    """
    family = find_chinese_font()
    others = [name for name in matplotlib.rcParams["font.sans-serif"] if name != family]
    matplotlib.rcParams["font.family"] = ["sans-serif"]
    matplotlib.rcParams["font.sans-serif"] = [family, *others]
    matplotlib.rcParams["axes.unicode_minus"] = False
    return family


# ---------------------------------------------------------------------------
# Text tables
# ---------------------------------------------------------------------------


def display_width(text: str) -> int:
    """Return the number of monospaced columns `text` takes: wide (CJK) characters count as two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _pad(text: str, width: int, align: str) -> str:
    padding = " " * (width - display_width(text))
    return text + padding if align == "left" else padding + text


def format_table(header, rows) -> str:
    """Format rows as a plain-text table whose columns line up even with Chinese text.

    The first column is left-aligned and the others right-aligned. Integers get thousands
    separators, other values are shown with `str`.
    """
    header = [str(cell) for cell in header]
    table = [header]
    for index, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"第 {index} 行有 {len(row)} 列，而表头有 {len(header)} 列。每行的列数必须与表头相同。")
        table.append([f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell) for cell in row])

    widths = [max(display_width(row[column]) for row in table) for column in range(len(header))]
    lines = []
    for row in table:
        cells = [_pad(row[0], widths[0], "left")]
        cells += [_pad(cell, width, "right") for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------


def plot_parameter_counts(counts: dict, title: str = "各部分参数量", ax=None):
    """Draw a grouped horizontal bar chart of parameter counts and return the Axes.

    `counts` maps a model name to `{part name: parameter count}`, for example
    `{"tiny-gpt-zh": {"嵌入层": 1_000_000, "Transformer 层": 3_000_000}}`. Parts missing from a
    model are drawn as 0. Call `setup_chinese_font()` first when part names are Chinese.
    """
    import matplotlib.pyplot as plt

    if not counts:
        raise ValueError("counts 为空。请传入 {模型名: {部分名: 参数量}} 形式的字典。")
    parts = list(dict.fromkeys(part for model_counts in counts.values() for part in model_counts))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 * len(parts) * len(counts) + 1.2))

    positions = np.arange(len(parts))
    bar_height = 0.8 / len(counts)
    for index, (model_name, model_counts) in enumerate(counts.items()):
        values = [model_counts.get(part, 0) / 1e6 for part in parts]
        bars = ax.barh(positions + index * bar_height, values, height=bar_height, label=model_name)
        ax.bar_label(bars, labels=[_format_count(value * 1e6) for value in values], padding=3, fontsize=8)

    ax.set_yticks(positions + bar_height * (len(counts) - 1) / 2, parts)
    ax.invert_yaxis()
    ax.set_xlabel("参数量（百万）")
    ax.set_title(title)
    ax.margins(x=0.15)
    ax.legend()
    return ax


def _format_count(count: float) -> str:
    """Label a parameter count: millions when large, the plain number when small (512, not 0.00M)."""
    return f"{count / 1e6:.2f}M" if count >= 10_000 else f"{int(round(count)):,}"
