import pytest

from chattune.config import build_config, load_config
from chattune.errors import ConfigError

BASE = {"data": {"train": "x.jsonl"}}


def test_defaults_and_trl_names():
    cfg = build_config(BASE)
    assert cfg.finetuning == "lora" and cfg.lora.target_modules == "all-linear"
    assert cfg.max_steps == -1 and cfg.lr_scheduler_type == "cosine"


def test_every_problem_reported_at_once_with_its_key():
    raw = {**BASE, "learning_rate": -1, "warmup_ratio": 1.5, "lr_scheduler": "cosine", "lora": {"r": 0}}
    with pytest.raises(ConfigError) as e:
        build_config(raw)
    text = str(e.value)
    assert "learning_rate" in text and "warmup_ratio" in text and "lora.r" in text
    assert "lr_scheduler: unknown key" in text
    assert len(e.value.problems) == 4


def test_missing_data_is_named():
    with pytest.raises(ConfigError, match="data: required key is missing"):
        build_config({})


def test_overrides_are_typed_and_dotted():
    cfg = build_config(BASE, ["max_steps=7", "lora.r=4", "packing=true", "data.columns={q: user, a: assistant}"])
    assert cfg.max_steps == 7 and cfg.lora.r == 4 and cfg.packing is True
    assert cfg.data.columns == {"q": "user", "a": "assistant"}


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config(BASE, ["max_steps"])


def test_eval_steps_needs_eval_data():
    with pytest.raises(ConfigError, match="eval_steps is set but neither data.eval nor data.test_size"):
        build_config({**BASE, "eval_steps": 5})


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_demo_config_is_valid():
    from conftest import ROOT

    cfg = load_config(ROOT / "configs" / "gsm8k-demo.yaml")
    assert cfg.compare is not None and cfg.compare.num_samples >= 100


def test_every_shipped_config_is_valid():
    from conftest import ROOT

    from chattune.config import load_config

    shipped = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(shipped) >= 2
    for path in shipped:
        load_config(path)
