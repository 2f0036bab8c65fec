#!/usr/bin/env bash
# One-time setup for running the notebooks: the evcxr Rust kernel and Jupyter.
#
#   bash notebooks/setup.sh             # kernel + JupyterLab in .venv (then: .venv/bin/jupyter lab notebooks/)
#   bash notebooks/setup.sh --headless  # kernel + what is needed to execute notebooks without a browser
#
# Needs: a Rust toolchain (cargo) and Python 3 with venv. Takes about 6 minutes the first time,
# mostly compiling evcxr_jupyter; running it again is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

EVCXR_VERSION=0.22.0
if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  echo "installing evcxr_jupyter $EVCXR_VERSION (a few minutes)…"
  cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --quiet
fi
evcxr_jupyter --install >/dev/null

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
if [ "${1:-}" = "--headless" ]; then
  .venv/bin/pip install --quiet nbclient nbformat ipykernel
  echo "ready: the 'Rust' kernel is registered; execute notebooks with .ci/execute_notebooks.py"
else
  .venv/bin/pip install --quiet jupyterlab nbclient
  echo "ready: open the notebooks with  .venv/bin/jupyter lab notebooks/"
fi
