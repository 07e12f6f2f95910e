#!/usr/bin/env bash
# Install everything specperf's tests need into ./.venv, from nothing:
#   python venv + CPU torch (pinned: an unpinned torch pulls a multi-GB CUDA build) + specperf[dev]
#   + Debian's chromium and chromium-driver (headless figure and explorer tests through selenium,
#   plotly's PNG export through kaleido).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "specperf set up in .venv ($(.venv/bin/python -c 'import torch, perfmodel; print("torch", torch.__version__, "specperf", perfmodel.__version__)'))"
