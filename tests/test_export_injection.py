"""Exports from hostile names and paths run nothing but what specperf meant (issue 25).

A model name read from config.json (`_name_or_path`) and the folder a config.json lives in reach
the SGLang shell script and the Hugging Face Python snippet. Each hostile case here tries to end a
comment line or a quoted word and start a statement of its own that writes a marker file. The
SGLang script is parsed by `bash -n` and then run with a stub `python` that records its argv: the
marker must not exist and the argv must be exactly the command specperf meant. The HF snippet is
parsed with `ast.parse` and must have the same statement structure as a benign export, with the
hostile paths only as string constants; it is also run with stub torch/transformers modules."""
import ast
import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from specperf.perfmodel.optimize.export import export_config
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.models import SpecError, apply_overrides, from_hf_config

TINY = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 32000, "max_position_embeddings": 2048}


def _payloads(marker: str) -> list[str]:
    sh = f"printf pwned > {marker}"
    py = f"open({marker!r}, 'w').write('pwned')"
    return [f"x\n{sh}", f"x\r\n{sh}\n", f"x\n{py}", f"x\r{py}", f"x\u2028{py}", f"x\u2029{py}",
            f"x\x0b{py}", f"x\x0c{py}", f"x\x85{py}", f"x\x1c{py}", "x\n\"\"\"", f"x'; {sh}; '",
            f"x\"; {sh}; \"", f"$({sh})", f"`{sh}`", f"x' \\\n; {sh} #", f"x')\n{py}\n#",
            f"--x\n{sh}", "[/bad] [bold]", "x\\", "x\\\n" + py,
            # a PEP 263 cookie in the header line: UTF-7 would decode '+AAo-' into a newline
            f"x -*- coding: utf-7 -*- +AAo-{py}", f"coding=utf-7 +AAo-{py}"]


def _hostile_config(tmp_path, name: str, folder: str):
    d = tmp_path / folder
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(dict(TINY, _name_or_path=name)))
    return from_hf_config(d / "config.json")


def _folders(marker: str) -> list[str]:
    # folder names may hold anything but '/' and NUL
    return ["plain", f"$(printf pwned > {marker.replace('/', '_')})", "a'b\"c;d", "-flagish",
            "--model-path", "x\ny", "x\\", "sp ace", "`id`", "*", "~"]


def _cases(tmp_path):
    marker = str(tmp_path / "MARKER")
    names, folders = _payloads(marker), _folders(marker)
    for i, name in enumerate(names):
        yield name, folders[i % len(folders)], marker


def _run_sglang(text: str, tmp_path) -> list[str]:
    script = tmp_path / "launch.sh"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    stub = tmp_path / "stubbin"
    stub.mkdir(exist_ok=True)
    argv = tmp_path / "argv.bin"
    (stub / "python").write_text(f"#!/bin/bash\nprintf '%s\\0' \"$@\" > {shlex.quote(str(argv))}\n")
    (stub / "python").chmod(0o755)
    r = subprocess.run(["/bin/bash", str(script)], env={"PATH": str(stub)}, capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return argv.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1]


@pytest.mark.parametrize("origin_kind", ["config", "override"])
def test_sglang_script_from_hostile_names_runs_only_the_launch(tmp_path, origin_kind):
    target = resolve_model("llama-7b")
    for k, (name, folder, marker) in enumerate(_cases(tmp_path)):
        case = tmp_path / f"c{k}"
        draft = _hostile_config(case, name, folder)
        origin = "config"
        if origin_kind == "override":  # the name also reaches a NOTE comment line via its repr
            draft, origin = apply_overrides(draft, "n_layers=1"), "design"
        doc = export_config("sglang", target, "catalog", draft, origin, 3, tp=1, mode="eager")
        argv = _run_sglang(doc["text"], case)
        assert not os.path.exists(marker), (name, folder)
        assert ["python"] + argv == shlex.split(doc["command"]), (name, folder)
        dpath = argv[argv.index("--speculative-draft-model-path") + 1]
        if origin_kind == "config" and ":" not in name:  # the real folder, not a mangled one
            assert os.path.samefile(dpath, case / folder)
        assert argv[-1] == "--disable-cuda-graph" and argv.count("--speculative-num-steps") == 1


def _normalised_dump(text: str, paths: dict[str, str]) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in paths:
            node.value = paths[node.value]
    return ast.dump(tree)


def _run_hf_with_stubs(text: str, tmp_path) -> list:
    stubs = tmp_path / "stubs"
    (stubs / "transformers").mkdir(parents=True, exist_ok=True)
    (stubs / "torch.py").write_text("float16 = 'float16'\n")
    (stubs / "transformers" / "__init__.py").write_text(textwrap.dedent("""
        CALLS = []
        class _M:
            device = 'cpu'
            def to(self, device):
                return self
        class AutoModelForCausalLM:
            @staticmethod
            def from_pretrained(path, **kw):
                CALLS.append(path)
                return _M()
        class AutoTokenizer:
            @staticmethod
            def from_pretrained(path, **kw):
                CALLS.append(path)
                return object()
    """))
    snippet = tmp_path / "assist.py"
    snippet.write_text(text)
    runner = ("import runpy, json, sys, transformers\n"
              "g = runpy.run_path(sys.argv[1])\n"
              "print(json.dumps([transformers.CALLS, sorted(k for k in g if not k.startswith('__'))]))")
    r = subprocess.run([sys.executable, "-c", runner, str(snippet)], capture_output=True, text=True,
                       env={"PYTHONPATH": str(stubs), "PATH": os.environ.get("PATH", "")}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_hf_snippet_from_hostile_names_has_only_specperfs_statements(tmp_path):
    target = resolve_model("llama-7b")
    benign = _hostile_config(tmp_path / "benign", "benign", "benign")
    ref = export_config("hf", target, "catalog", benign, "config", 4)
    ref_dump = _normalised_dump(ref["text"], {ref["config"]["assistant_model"]: "D"})
    for k, (name, folder, marker) in enumerate(_cases(tmp_path)):
        case = tmp_path / f"c{k}"
        draft = _hostile_config(case, name, folder)
        doc = export_config("hf", target, "catalog", draft, "config", 4)
        dpath = doc["config"]["assistant_model"]
        # same statements and expressions as the benign export; the hostile path is one constant
        assert _normalised_dump(doc["text"], {dpath: "D"}) == ref_dump, (name, folder)
        calls, names = _run_hf_with_stubs(doc["text"], case)
        assert not os.path.exists(marker), (name, folder)
        assert calls[1] == dpath
        assert ":" in name or os.path.samefile(dpath, case / folder)  # NAME:… reads as an override: placeholder
        assert names == ["AutoModelForCausalLM", "AutoTokenizer", "assistant_model", "generation_kwargs",
                         "model", "tokenizer", "torch"]


def test_vllm_json_from_hostile_name_round_trips(tmp_path):
    target = resolve_model("llama-7b")
    for k, (name, folder, marker) in enumerate(_cases(tmp_path)):
        draft = _hostile_config(tmp_path / f"c{k}", name, folder)
        doc = export_config("vllm", target, "catalog", draft, "config", 2)
        assert json.loads(doc["text"]) == doc["config"]
        cmd = shlex.split(doc["command"])
        assert json.loads(cmd[cmd.index("--speculative-config") + 1]) == doc["config"]


def test_unexportable_strings_are_refused_with_one_line(tmp_path):
    target = resolve_model("llama-7b")
    draft = _hostile_config(tmp_path, "nul", "ok")
    bad = draft.__class__(**{**draft.__dict__, "source": str(tmp_path / "x\ud800" / "config.json")})
    with pytest.raises(SpecError, match="unpaired surrogate"):
        export_config("sglang", target, "catalog", bad, "config", 2)


def test_optimize_cli_writes_a_safe_sglang_script(tmp_path):
    from typer.testing import CliRunner

    from specperf.cli.main import app
    marker = tmp_path / "MARKER"
    draft_dir = tmp_path / "d'$(printf pwned > MARKER)"
    draft_dir.mkdir()
    (draft_dir / "config.json").write_text(json.dumps(dict(TINY, _name_or_path=f"x\nprintf pwned > {marker}")))
    out = tmp_path / "launch.sh"
    r = CliRunner().invoke(app, ["optimize", "--target", "llama-7b", "--drafts", str(draft_dir / "config.json"),
                                 "--gpu", "h100-sxm", "--alpha", "0.7", "--emit", "sglang",
                                 "--emit-out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    argv = _run_sglang(out.read_text(), tmp_path)
    assert not marker.exists()
    assert os.path.samefile(argv[argv.index("--speculative-draft-model-path") + 1], draft_dir)
