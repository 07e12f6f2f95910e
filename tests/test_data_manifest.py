"""The shipped data layout: perfmodel/data holds only the files its manifest lists (each read by a
provider), the wheel ships exactly those, and `python -m specperf.perfmodel.data_build` rebuilds every derived
file byte for byte from the measured ones."""
import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest

from specperf.perfmodel import shipped
from specperf.perfmodel.data_build import cli as build_cli
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "perfmodel" / "data"
NOT_DATA = {"README.md", "manifest.json"}  # documentation and the manifest itself


def _data_files():
    return sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_every_file_in_data_is_listed_and_every_listed_file_exists():
    entries = shipped.load_manifest()
    listed = {e.file for e in entries} | {e.file + ".meta.json" for e in entries}
    assert [f for f in _data_files() if f not in listed | NOT_DATA] == []
    assert [e.file for e in entries if not e.path.is_file()] == []
    assert len({e.file for e in entries}) == len(entries)


def test_every_listed_file_is_read_by_a_provider():
    """Building each shipped GPU's providers and answering every mode at tp 1 and 2 looks up every entry."""
    shipped._LOOKUPS.clear()
    import importlib

    from specperf.perfmodel.latency import bands
    from specperf.perfmodel.specdec import uncertainty

    importlib.reload(bands), importlib.reload(uncertainty)  # their error_bands lookup happens at import
    gpus = sorted({e.gpu for e in shipped.load_manifest() if e.gpu})
    spec = resolve_model("llama-65b")
    for g in gpus:
        prov = build_provider(GPUS[g], modes=("graph", "eager", "compiled")).target
        for mode in ("graph", "eager", "compiled"):
            for tp in (1, 2):
                prov.forward(spec, 1, 1, 512, tp, mode)
        from specperf.perfmodel.latency.chain import with_operators

        with_operators(prov, GPUS[g], dtype="bf16")  # the bf16 operator table
    read = {e.file for e in shipped._LOOKUPS}
    assert sorted({e.file for e in shipped.load_manifest()} - read) == []


def test_rebuild_reproduces_every_derived_file_byte_for_byte():
    assert build_cli.check(log=lambda *_: None) == []


def test_rebuild_check_notices_a_changed_file(tmp_path):
    """The comparison can fail: a derived file edited by hand differs from its rebuild."""
    import shutil

    d = tmp_path / "data"
    shutil.copytree(DATA, d)
    doc = json.loads((d / "error_bands.json").read_text())
    doc["bands"]["measured"]["graph"]["band"] *= 0.5
    (d / "error_bands.json").write_text(json.dumps(doc, indent=1) + "\n")
    assert build_cli.check(d, shipped.EVIDENCE_DIR, log=lambda *_: None) == ["error_bands.json"]


def test_wheel_package_data_is_exactly_the_manifest():
    pd = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["specperf.perfmodel"]
    shipped_in_wheel = {f for f in _data_files() if any(fnmatch.fnmatch("data/" + f, g) for g in pd)}
    assert shipped_in_wheel == set(_data_files())
    assert not (ROOT / "perfmodel" / "data" / "compiled_flavours").exists()
    assert (ROOT / "evidence" / "validation_h100_graph.csv").is_file()  # evidence lives outside the package


def test_providers_match_no_file_names():
    """The manifest is the one map from (role, gpu, dtype, mode, tp) to a file: no globbing or
    file-name patterns of shipped data in perfmodel."""
    bad = []
    for p in (ROOT / "perfmodel").rglob("*.py"):
        s = p.read_text()
        if re.search(r"\.glob\(|_tp\{|operators_\{|f\"\{gpu\}|endswith\(f\"_", s):
            bad.append(str(p.relative_to(ROOT)))
    assert bad == []


def test_manifest_errors_are_one_clear_line(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"files": [{"file": "x.csv", "role": "profiles"}]}))
    with pytest.raises(shipped.ManifestError, match="role 'profiles'; allowed: profile"):
        shipped.load_manifest(tmp_path)
    d = tmp_path / "two"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"files": [
        {"file": "a.csv", "role": "profile", "gpu": "h200", "modes": ["graph"]},
        {"file": "b.csv", "role": "profile", "gpu": "h200", "modes": ["graph"]}]}))
    with pytest.raises(shipped.ManifestError, match="2 files answer role=profile"):
        shipped.find_one("profile", gpu="h200", mode="graph", data_dir=d)


def test_a_new_table_is_one_manifest_entry(tmp_path):
    """Adding a measured table: copy it in and list it; the provider finds it with no code change."""
    import shutil

    d = tmp_path / "data"
    shutil.copytree(DATA, d)
    for suffix in ("", ".meta.json"):
        shutil.copyfile(DATA / f"h200.csv{suffix}", d / f"h100-pcie.csv{suffix}")
    doc = json.loads((d / "manifest.json").read_text())
    doc["files"].append({"file": "h100-pcie.csv", "role": "profile", "gpu": "h100-pcie", "dtype": "fp16",
                         "modes": ["graph", "eager"], "command": "copied for the test"})
    (d / "manifest.json").write_text(json.dumps(doc))
    from specperf.perfmodel.latency.providers import shipped_profile

    assert shipped_profile("h100-pcie", d) == d / "h100-pcie.csv"
    assert shipped_profile("h100-pcie") is None


def test_rebuild_without_evidence_is_one_line_exit_2(tmp_path, capsys):
    assert build_cli.main(["--evidence", str(tmp_path / "none"), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --evidence") and "\n" not in err
