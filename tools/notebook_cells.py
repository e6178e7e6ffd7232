"""Cell helpers shared by the notebook builders in tools/.

Every notebook starts with the same set-up cell and metadata, taken from notebook 01.
"""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = nbformat.read(ROOT / "notebooks" / "01_prompt_pet.ipynb", as_version=4)
SETUP_SOURCE = next(cell.source for cell in REFERENCE.cells
                    if cell.cell_type == "code" and "find_spec(\"peft_lessons\")" in cell.source)


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text):
    return nbformat.v4.new_code_cell(text.strip("\n"))


def write_notebook(cells, target: Path) -> None:
    """Write `cells` to `target` with notebook 01's metadata, unexecuted."""
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=REFERENCE.metadata)
    nbformat.write(notebook, target)
    print(f"wrote {target.relative_to(ROOT)} with {len(cells)} cells")
