"""python -m specperf.perfmodel.data_build [--out DIR] [--evidence DIR] [--check] [--write-evidence]: rebuild
every derived shipped file (perfmodel.data_build.rebuild). --check rebuilds into a temporary folder
and exits 1 naming every file whose bytes differ from perfmodel/data's."""
from __future__ import annotations

import sys

from specperf.perfmodel.data_build.cli import main

if __name__ == "__main__":
    sys.exit(main())
