"""GPU entry point of the miniature study's re-run (issue 29): `PYTHONPATH=. python3 scripts/miniature_rerun.py --out DIR`.

Everything is in studies/miniature/rerun.py (plan, steps, outputs); this wrapper only fixes the
offline environment and the work folder. Ends within 4 minutes (internal deadline 220 s after the imports).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.miniature.rerun import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
