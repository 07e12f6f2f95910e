"""Measure a TP profile on this machine's GPUs — a thin wrapper; the logic is profiler.tp_profile:

  PYTHONPATH=. python scripts/tp_profile.py --tp 2 --out-dir DIR \
      --models llama-13b,llama-65b,llama-2-70b,opt-66b --validate llama-13b --budget-s 300
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.profiler.tp_profile import main  # noqa: E402

if __name__ == "__main__":
    main()
