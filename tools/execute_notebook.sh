#!/usr/bin/env bash
# Execute one notebook in place, as it is committed: outputs kept, stderr streams and widget state dropped.
#   tools/execute_notebook.sh 02_p_tuning.ipynb
# TensorFlow writes start-up logs to stderr that differ from machine to machine. They are removed so
# that the committed notebook shows only what the cells print.
set -euo pipefail
cd "$(dirname "$0")/../notebooks"
notebook="$1"
jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=7200 "$notebook"
python - "$notebook" <<'PY'
import sys

import nbformat

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
for cell in nb.cells:
    if cell.cell_type == "code":
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
nb.metadata.pop("widgets", None)
nbformat.write(nb, path)
print(f"executed and cleaned {path}")
PY
