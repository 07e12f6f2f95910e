"""Command line of the rebuild (argparse: perfmodel needs no typer here; `specperf data rebuild`
calls `main` too). Exit 0 when done (or, --check, when every derived file is byte-identical), 1 when
--check finds a difference, 2 on bad input (one line)."""
from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from specperf.perfmodel.shipped import DATA_DIR, EVIDENCE_DIR


def check(data_dir: Path = DATA_DIR, evidence: Path = EVIDENCE_DIR, log=print) -> list[str]:
    """Names of the derived files whose rebuild differs from `data_dir`'s (and their sidecars)."""
    from specperf.perfmodel.data_build.rebuild import rebuild

    with tempfile.TemporaryDirectory(prefix="specperf-rebuild-") as tmp:
        written = rebuild(tmp, data_dir, evidence, log=log)
        names = [n for w in written for n in (w, w + ".meta.json") if (Path(tmp) / n).exists() or (data_dir / n).exists()]
        return [n for n in names if not ((Path(tmp) / n).is_file() and (data_dir / n).is_file()
                                         and filecmp.cmp(Path(tmp) / n, data_dir / n, shallow=False))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m specperf.perfmodel.data_build",
                                 description="Rebuild the derived shipped data from the measured files.")
    ap.add_argument("--out", default=str(DATA_DIR), help="folder to write (default: perfmodel/data itself)")
    ap.add_argument("--evidence", default=str(EVIDENCE_DIR), help="the checkout's evidence/ folder")
    ap.add_argument("--check", action="store_true", help="rebuild into a temporary folder and compare bytes")
    ap.add_argument("--write-evidence", action="store_true",
                    help="also rewrite the shape-check error files in --evidence from the rebuilt tables")
    a = ap.parse_args(argv)
    ev = Path(a.evidence)
    if not ev.is_dir():
        print(f"error: --evidence {a.evidence!r} is not a folder; the rebuild needs a checkout's evidence/ "
              "(measured inputs)", file=sys.stderr)
        return 2
    if a.check:
        bad = check(DATA_DIR, ev)
        for n in bad:
            print(f"differs: perfmodel/data/{n}")
        print("rebuild reproduces every derived file" if not bad else f"{len(bad)} derived files differ")
        return 1 if bad else 0
    from specperf.perfmodel.data_build.rebuild import rebuild, write_evidence, _resolver
    from specperf.perfmodel.shipped import load_manifest

    out = Path(a.out)
    rebuild(out, DATA_DIR, ev)
    if a.write_evidence:
        for e in load_manifest(out):
            if "bands" in e.build:
                for p in write_evidence(e.build["bands"], _resolver(out, ev), out):
                    print(f"wrote {p}")
    return 0
