"""Rebuild every derived shipped file from the measured ones, as the manifest's `build` steps say:
copy each measured file into OUT with its derived metadata stripped, then, in order, merge tables
(`merge`), refit the analytical constants (`refit`), fit the operator glue (`glue`), store the
cross-GPU band (`cross_gpu`) and compute the error bands (`bands`, from the shape-check errors
recomputed with the rebuilt glue). OUT = perfmodel/data reproduces the shipped files byte for byte
(tests/test_data_manifest.py rebuilds into a temporary folder and compares).

Key assumption: every step is deterministic given its inputs (numpy least squares, no random draws),
and the measured inputs are the files as shipped minus the keys each step writes.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from specperf.perfmodel.data_build import bands, glue, profiles, shape_errors
from specperf.perfmodel.shipped import DATA_DIR, EVIDENCE_DIR, MANIFEST, load_manifest

COMMAND = "python -m specperf.perfmodel.data_build"  # recorded in every derived part
EVIDENCE = "evidence/"  # prefix of an evidence file in a build step; a bare name is a shipped file
DOCS = ("README.md",)  # copied as they are


def _resolver(out: Path, evidence: Path):
    def res(name: str) -> Path:
        return evidence / name[len(EVIDENCE):] if name.startswith(EVIDENCE) else out / name
    return res


def _copy_stripped(src: Path, dst: Path, keys) -> None:
    """`src` (and its .meta.json without `keys`) to `dst`, byte-identical otherwise."""
    shutil.copyfile(src, dst)
    m = src.with_name(src.name + ".meta.json")
    if m.is_file():
        meta = {k: v for k, v in json.loads(m.read_text()).items() if k not in keys}
        dst.with_name(dst.name + ".meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def rebuild(out: Path | str, data_dir: Path | str = DATA_DIR, evidence: Path | str = EVIDENCE_DIR,
            log=print) -> list[str]:
    """Rebuild into `out` (created; may be `data_dir` itself). Returns the files written."""
    out, data_dir, evidence = Path(out), Path(data_dir), Path(evidence)
    if out.exists() and out.resolve() == data_dir.resolve():  # in place: build apart, then copy back
        with tempfile.TemporaryDirectory(prefix="specperf-rebuild-") as tmp:
            written = rebuild(tmp, data_dir, evidence, log)
            for n in written:
                for name in (n, n + ".meta.json"):
                    if (Path(tmp) / name).is_file():
                        shutil.copyfile(Path(tmp) / name, data_dir / name)
        return written
    out.mkdir(parents=True, exist_ok=True)
    entries = load_manifest(data_dir)
    res = _resolver(out, evidence)
    for name in (MANIFEST,) + DOCS:
        if (data_dir / name).is_file():
            shutil.copyfile(data_dir / name, out / name)
    for e in entries:  # measured inputs, derived keys stripped
        if "merge" in e.build or "bands" in e.build:
            continue
        strip = (profiles.DERIVED_KEYS if e.build.get("refit") else ()) + (
            glue.DERIVED_KEYS if "glue" in e.build or "cross_gpu" in e.build else ())
        _copy_stripped(e.path, out / e.file, strip)
    written = []
    for e in entries:  # merged tables, then refits
        if "merge" in e.build:
            m = e.build["merge"]
            profiles.merge([res(p) for p in m["inputs"]], set(m["modes"]), COMMAND, m.get("note", "")).save(out / e.file)
            log(f"merged {len(m['inputs'])} tables into {e.file}")
        if e.build.get("refit"):
            profiles.refit(out / e.file)
            log(f"refit {e.file}")
            written.append(e.file)
    for e in entries:  # operator glue, then the cross-GPU band
        for step in e.build.get("glue", ()):
            glue.fit_glue(out / e.file, COMMAND, step.get("dtype", e.dtype),
                          **{k: res(step[k]) for k in ("layers", "eager_layers", "compiled_layers") if k in step})
            log(f"glue {e.file} ({', '.join(k for k in step if k != 'dtype')})")
        if "cross_gpu" in e.build:
            c = e.build["cross_gpu"]
            r = glue.cross_gpu_check(out / e.file, e.gpu, c["dst"], res(c["dst_profile"]))
            glue.store_cross_gpu(out / e.file, r, c["dst"], COMMAND)
            log(f"cross-GPU band {e.file} → {c['dst']}")
        if "glue" in e.build or "cross_gpu" in e.build:
            written.append(e.file)
    for e in entries:
        if "bands" in e.build:
            (out / e.file).write_text(bands.dumps(error_bands(e.build["bands"], res, out)))
            log(f"error bands {e.file}")
            written.append(e.file)
    return written


def operator_rows(spec: dict, res, data_dir: Path) -> list[dict]:
    """The shape-check error rows of every `operator_checks` entry, each tagged with its errors
    file, predicted from `data_dir`'s (rebuilt) operator tables and profiles."""
    import csv

    from specperf.perfmodel.shipped import find_one

    rows = []
    for chk in spec.get("operator_checks", ()):
        for rep in chk["reports"]:
            p = res(rep)
            with p.open(newline="") as f:
                first = next(csv.DictReader(f))
            gpu, dtype = first["gpu"], first.get("dtype") or "fp16"
            r = shape_errors.report(p, gpu, shipped_launch_costs=chk.get("shipped_launch_costs", False),
                                    errors_modes=chk.get("modes"),
                                    table=find_one("operators", gpu=gpu, dtype=dtype, data_dir=data_dir),
                                    profile=find_one("profile", gpu=gpu, mode="graph", data_dir=data_dir),
                                    compiled_profile=find_one("profile", gpu=gpu, mode="compiled", data_dir=data_dir))
            rows += [dict(x, _file=Path(chk["errors"]).name) for x in r["_rows"]]
    return rows


def error_bands(spec: dict, res, data_dir: Path) -> dict:
    """The error_bands.json document of a manifest `bands` step."""
    return bands.compute([res(f) for f in spec["loop"]], res(spec["compiled_loop"]), res(spec["tp_validation"]),
                         res(spec["composition"]), [res(f) for f in spec["analytical_profiles"]],
                         operator_rows(spec, res, data_dir), COMMAND, reference_rows(spec, res, data_dir))


def reference_rows(spec: dict, res, data_dir: Path) -> list[dict]:
    """{mode, rel_err, _file} of every `reference_checks` entry (independent whole models, graph and
    compiled rows), predicted from `data_dir`'s (rebuilt) operator table of the check's GPU."""
    from specperf.perfmodel.data_build import reference
    from specperf.perfmodel.shipped import find_one

    rows = []
    for chk in spec.get("reference_checks", ()):
        table = find_one("operators", gpu=chk["gpu"], dtype="fp16", data_dir=data_dir)
        refs = [r for r in reference.read(res(chk["reference"])) if r["mode"] in chk.get("modes", ("graph", "compiled"))]
        rows += [dict(x, _file=Path(chk["reference"]).name) for x in reference.table_errors(refs, chk["gpu"], table)]
    return rows


def write_evidence(spec: dict, res, data_dir: Path) -> list[Path]:
    """The shape-check error files (evidence) of a `bands` step, rewritten from `data_dir`'s tables."""
    rows, out = operator_rows(spec, res, data_dir), []
    for chk in spec.get("operator_checks", ()):
        p = res(chk["errors"])
        shape_errors.write_errors(p, [r for r in rows if r["_file"] == p.name])
        out.append(p)
    return out
