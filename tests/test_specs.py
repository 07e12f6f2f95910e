"""ModelSpec from Hugging Face config.json files: hand-written fixtures of published configs must
parse into the catalog's shape; malformed files must give one-line SpecErrors."""
import dataclasses
import json
from pathlib import Path

import pytest

from specperf.perfmodel.specs.catalog import MODELS, resolve_model
from specperf.perfmodel.specs.models import ModelSpec, SpecError, from_hf_config

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
SHAPE_FIELDS = [f.name for f in dataclasses.fields(ModelSpec) if f.name not in ("name", "source")]
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.json").is_file())


def test_fixtures_cover_every_family():
    assert {MODELS[n].family for n in FIXTURE_NAMES} == {"llama", "mistral", "qwen2", "qwen3", "opt"}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_parses_into_catalog_shape(name):
    spec = from_hf_config(FIXTURES / name / "config.json")
    cat = MODELS[name]
    for f in SHAPE_FIELDS:
        assert getattr(spec, f) == getattr(cat, f), f
    assert spec.params == cat.params
    assert spec.source.endswith("config.json")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_config_path_accepted_wherever_a_name_is(name):
    folder = FIXTURES / name
    by_dir = resolve_model(str(folder))
    by_file = resolve_model(str(folder / "config.json"))
    assert by_dir == by_file
    over = resolve_model(f"{folder / 'config.json'}:n_layers=2")
    assert over.n_layers == 2 and over.d_model == by_file.d_model


def test_opt_350m_projection_and_defaults():
    s = from_hf_config(FIXTURES / "opt-350m")
    assert s.embed_dim == 512 and s.tied_embeddings and s.linear_bias and s.learned_positions
    assert s.lm_head_weight_bytes == 512 * 50272 * 2
    assert s.name == "facebook/opt-350m"  # from _name_or_path


def test_llama1_config_without_kv_heads_is_mha():
    s = from_hf_config(FIXTURES / "llama-7b")
    assert s.n_kv_heads == s.n_heads == 32
    assert s.name == "llama-7b"  # folder name when _name_or_path is absent


def test_dtype_bytes():
    assert from_hf_config(FIXTURES / "mistral-7b", dtype_bytes=4).layer_weight_bytes == \
        2 * MODELS["mistral-7b"].layer_weight_bytes


# ---- malformed configs ---------------------------------------------------------------------------
def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "config.json"
    p.write_text(text)
    return p


def _base() -> dict:
    return json.loads((FIXTURES / "llama-2-70b" / "config.json").read_text())


def _one_line_error(path, *needles):
    with pytest.raises(SpecError) as e:
        from_hf_config(path)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    # the same through the resolver, as the CLI uses it
    with pytest.raises(SpecError):
        resolve_model(str(path))
    return msg


def test_invalid_json(tmp_path):
    _one_line_error(_write(tmp_path, '{"model_type": "llama", "hidden_size": 4096,'), "not valid JSON")


def test_not_an_object(tmp_path):
    _one_line_error(_write(tmp_path, "[1, 2, 3]"), "JSON object")


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope" / "config.json", "does not exist")


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "does not exist")


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "vocab_size", "max_position_embeddings"])
def test_missing_field(tmp_path, field):
    cfg = _base()
    del cfg[field]
    _one_line_error(_write(tmp_path, json.dumps(cfg)), f"lacks field {field!r}")


def test_missing_opt_field(tmp_path):
    cfg = json.loads((FIXTURES / "opt-1.3b" / "config.json").read_text())
    del cfg["ffn_dim"]
    _one_line_error(_write(tmp_path, json.dumps(cfg)), "'ffn_dim'")


@pytest.mark.parametrize("mtype", ["gpt2", None, "", ["llama"], 7])
def test_unknown_model_type(tmp_path, mtype):
    cfg = _base()
    cfg["model_type"] = mtype
    _one_line_error(_write(tmp_path, json.dumps(cfg)), "model_type", "not supported")


@pytest.mark.parametrize("field,value", [("hidden_size", 4096.5), ("hidden_size", "8192"),
                                         ("num_hidden_layers", 80.0), ("num_key_value_heads", "8"),
                                         ("vocab_size", True), ("intermediate_size", None),
                                         ("num_attention_heads", [64])])
def test_non_integer_field(tmp_path, field, value):
    cfg = _base()
    cfg[field] = value
    _one_line_error(_write(tmp_path, json.dumps(cfg)), field, "integer")


@pytest.mark.parametrize("field,value,needle", [("hidden_size", 0, "d_model=0"),
                                                ("num_hidden_layers", -1, "n_layers=-1"),
                                                ("num_attention_heads", 48, "n_heads=48"),
                                                ("num_key_value_heads", 7, "n_kv_heads=7")])
def test_inconsistent_shape(tmp_path, field, value, needle):
    cfg = _base()
    cfg[field] = value
    _one_line_error(_write(tmp_path, json.dumps(cfg)), needle)


def test_modelspec_validation():
    base = MODELS["llama-7b"]
    with pytest.raises(SpecError, match="n_layers=True"):
        base.replace(n_layers=True)
    with pytest.raises(SpecError, match="family"):
        base.replace(family="bloom")
    d = base.to_dict()
    assert d["params"] == base.params and d["head_dim"] == 128
