import pytest

from chattune.config import build_config, load_config
from chattune.errors import ConfigError

BASE = {"data": {"train": "x.jsonl"}}


def test_defaults_and_trl_names():
    cfg = build_config(BASE)
    assert cfg.finetuning == "lora" and cfg.lora.target_modules == "all-linear"
    assert cfg.args.max_steps == -1 and cfg.args.lr_scheduler_type == "cosine"


def test_every_problem_reported_at_once_with_its_key():
    raw = {**BASE, "learning_rate": -1, "warmup_ratio": 1.5, "lr_scheduler": "cosine",
           "lora": {"r": 0}}
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
    cfg = build_config(BASE,
                       ["max_steps=7", "lora.r=4", "packing=true",
                        "data.columns={q: user, a: assistant}"])
    assert cfg.args.max_steps == 7 and cfg.lora.r == 4 and cfg.args.packing is True
    assert cfg.data.columns == {"q": "user", "a": "assistant"}


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config(BASE, ["max_steps"])


def test_eval_steps_needs_eval_data():
    with pytest.raises(ConfigError,
                       match="eval_steps is set but neither data.eval nor data.test_size"):
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


@pytest.mark.parametrize(("override", "key", "says"), [
    ("learning_rate=.inf", "learning_rate", "finite"),
    ("learning_rate=.nan", "learning_rate", "finite"),
    ("learning_rate=1e38", "learning_rate", "less than or equal to 1"),
    ("num_train_epochs=.inf", "num_train_epochs", "finite"),
    ("weight_decay=.inf", "weight_decay", "finite"),
    ("data.test_size=.inf", "data.test_size", "finite"),
    ("seed=1.0e+21", "seed", "integer"),
    ("seed=4294967296", "seed", "less than 4294967296"),
    ("seed=-1", "seed", "greater than or equal to 0"),
    ("max_length=100000000000000000000", "max_length", "at most 9223372036854775807"),
    ("max_steps=0", "max_steps", "would train nothing"),
    ("model=''", "model", "expected a hub id"),
    ("data.columns={}", "data.columns", "maps no column to a role"),
    ("data.train=[]", "data.train", "lists no training data"),
    ("data.train=[{path: x.jsonl, columns: {}}]", "data.train.0.columns",
     "maps no column to a role"),
    ("compare={data: x.jsonl, columns: {}}", "compare.columns", "maps no column to a role"),
])
def test_numbers_are_finite_and_empty_values_are_named(override, key, says):
    with pytest.raises(ConfigError) as e:
        build_config(BASE, [override])
    # one line naming the key, not pydantic's union branches
    assert len(e.value.problems) == 1, e.value.problems
    assert e.value.problems[0].startswith(f"{key}: ") and says in e.value.problems[0]


def test_checks_across_keys_are_not_prefixed_by_their_section():
    with pytest.raises(ConfigError) as e:
        build_config({"data": {"train": "x.jsonl", "test_size": 2.5}})
    assert e.value.problems == ["data.test_size as a share must be below 1, got 2.5"]


EVAL = {"data": {"train": "x.jsonl", "test_size": 2}, "eval_steps": 2, "save_steps": 2}


def test_fsdp_refuses_what_it_cannot_do_yet():
    with pytest.raises(ConfigError,
                       match="load_best_model_at_end is not supported with strategy: fsdp"):
        build_config(EVAL, ["strategy=fsdp", "load_best_model_at_end=true"])
    build_config(EVAL, ["strategy=ddp", "load_best_model_at_end=true"])


def test_unknown_keys_say_which_key_was_meant():
    raw = {"data": {"train": [{"pth": "x.jsonl"}], "colums": {}}, "lerning_rate": 1e-4,
           "lora": {"rr": 4}, "zzz": 1}
    with pytest.raises(ConfigError) as e:
        build_config(raw, ["per_device_batch_size=2"])
    problems = e.value.problems
    for said in ("lerning_rate: unknown key; did you mean `learning_rate`?",
                 "lora.rr: unknown key; did you mean "
                 "`lora.r`?", "data.colums: unknown key; did you mean `data.columns`?",
                 "data.train.0.pth: unknown "
                 "key; did you mean `data.train.0.path`?", "zzz: unknown key"):
        assert said in problems, problems
    assert "per_device_batch_size: unknown key; did you mean `per_device_eval_batch_size` or " \
           "`per_device_train_batch_size`?" in problems
