#!/usr/bin/env bash
# Record the notebooks' outputs, which are committed so that a reader who runs nothing sees
# every number and figure:
#
#   bash notebooks/record.sh                                  # every notebook (about 10 minutes)
#   bash notebooks/record.sh notebooks/02-reinforce.ipynb     # one
#
# Regenerates the notebooks from the book, executes them with the evcxr kernel, writes the
# outputs into notebooks/, then writes what each block prints to book/src/generated/outputs/
# (which the book shows under the block). `zero-to-r1 notebooks --check` then passes, and CI
# fails if executing the notebooks no longer prints what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash notebooks/setup.sh --headless
cargo run --release --quiet -- notebooks
EVCXR_TMPDIR=$(mktemp -d)
export EVCXR_TMPDIR
trap 'rm -rf "$EVCXR_TMPDIR"' EXIT
if [ $# -eq 0 ]; then set -- notebooks/*.ipynb; fi
.venv/bin/python .ci/execute_notebooks.py --record "$@"
cargo run --release --quiet -- notebooks
