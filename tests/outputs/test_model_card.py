"""Portable, documented outputs: an adapter names its base by the id the user gave (chattune still
finds it offline), adapter/ and merged/ carry a model card, and merged/ is saved in the dtype the
base was trained in."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

import chattune
from chattune.cli import main
from chattune.config import DEFAULT_MODEL
from chattune.model.load import SOURCE_FILE, default_model_dir, model_id
from chattune.outputs.model_card import CardFacts, base_licence, card_text


def front_matter(card: str) -> dict:
    assert card.startswith("---\n"), card[:200]
    return yaml.safe_load(card.split("---")[1])


def safetensors_dtypes(folder: Path) -> set[str]:
    """The dtypes of a saved model's weights, read from the safetensors headers."""
    dtypes = set()
    for path in folder.glob("*.safetensors"):
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        dtypes |= {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    return dtypes


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir) -> Path:
    """One LoRA run on the tiny model, bf16 weights, an eval hold-out and a before/after
    comparison."""
    tmp = tmp_path_factory.mktemp("card-run")
    with gzip.open(ROOT / "data" / "gsm8k" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        (tmp / "gsm8k.jsonl").write_text("".join(next(f) for _ in range(12)), encoding="utf-8")
    columns = {"question": "user", "answer": "assistant"}
    cfg = chattune.build_config({
        "model": str(tiny_model_dir), "output_dir": str(tmp / "out"), "bf16": True, "max_steps": 2,
        "eval_steps": 2, "per_device_train_batch_size": 4, "eval_generations": 0,
        "data": {"train": str(tmp / "gsm8k.jsonl"), "columns": columns, "test_size": 2},
        "compare": {"data": str(tmp / "gsm8k.jsonl"), "columns": columns, "num_samples": 2,
                    "max_new_tokens": 4, "show": 0}})
    chattune.run_training(cfg)
    return tmp / "out"


def test_adapter_names_the_base_as_given(run, tiny_model_dir):
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)


def test_adapter_and_merged_carry_a_model_card(run, tiny_model_dir):
    adapter, merged = ((run / "adapter" / "README.md").read_text(),
                       (run / "merged" / "README.md").read_text())
    meta = front_matter(adapter)
    assert meta["base_model"] == str(tiny_model_dir) and meta["library_name"] == "peft"
    assert {"chattune", "sft", "lora"} <= set(meta["tags"])
    assert (front_matter(merged)["library_name"] == "transformers"
            and "merged" in front_matter(merged)["tags"])
    for text in (adapter, merged):
        assert "## Training" in text and "- method: LoRA" in text and "  - r: 16" in text
        assert "`gsm8k.jsonl`: 12 rows -> 12 examples" in text and "eval: held out of train" in text
        assert "| train loss |" in text and "| eval loss |" in text and "| steps | 2 |" in text
        # no licence known for a random model
        assert "base model's licence and terms of use apply" in text
        assert f"chattune {chattune.__version__} on 20" in text
        config = yaml.safe_load(
            text.split("## chattune config")[1].split("```yaml")[1].split("```")[0])
        assert config["model"] == str(tiny_model_dir) and config["max_steps"] == 2
        # rewritten after the comparison: its scores are in the card
        assert "## Evaluation" in text and "| exact match |" in text
    # not peft's template
    assert "AutoPeftModelForCausalLM.from_pretrained" in adapter and "Empty" not in adapter
    assert "AutoModelForCausalLM.from_pretrained" in merged and "saved in bfloat16" in merged


def test_merged_model_is_saved_in_the_dtype_the_base_was_trained_in(run):
    assert safetensors_dtypes(run / "merged") == {"BF16"}
    assert json.loads((run / "merged" / "config.json").read_text())["dtype"] == "bfloat16"


def test_merge_dtype_asks_for_another(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "bf16": True, "merge_dtype": "float32", "max_steps": 1,
                                 "per_device_train_batch_size": 4,
                                 "data": {"train": str(gsm8k_small),
        "columns": {"question": "user", "answer": "assistant"}}})
    chattune.run_training(cfg)
    assert safetensors_dtypes(tmp_path / "out" / "merged") == {"F32"}


def test_adapter_loads_offline_through_the_base_it_names(run):
    """A new process with the hub switched off: chattune finds the base from adapter_config.json
    alone."""
    code = ("import sys; from chattune.model.inference import load_for_inference; "
            "m, t = load_for_inference(None, sys.argv[1]); print(type(m).__name__, len(t))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, str(run / "adapter")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("PeftModelForCausalLM")


def test_chattune_merge_writes_a_card_and_the_dtype_asked(run, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(["merge", str(tiny_model_dir), str(run / "adapter"), str(out), "--dtype",
                 "bfloat16", "--device", "cpu"]) == 0
    assert safetensors_dtypes(out) == {"BF16"} and "(bfloat16)" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert front_matter(card)["base_model"] == str(tiny_model_dir)
    # the adapter's training sections come along, then what the merge did
    assert "`gsm8k.jsonl`: 12 rows" in card and "| train loss |" in card
    assert "merged in fp32 by `chattune merge`" in card


def test_model_id_names_cached_folders_by_what_they_stand_for(tmp_path):
    assert model_id(default_model_dir()) == DEFAULT_MODEL
    snapshot = tmp_path / "hub" / "models--SomeOrg--some-model" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    assert model_id(snapshot) == "SomeOrg/some-model"
    converted = tmp_path / "converted"
    converted.mkdir()
    (converted / SOURCE_FILE).write_text("/data/models/my-model.Q8_0.gguf\n")
    assert model_id(converted) == "/data/models/my-model.Q8_0.gguf"
    assert model_id("my/local/folder") == "my/local/folder"


def test_licence_known_read_from_the_base_card_or_left_to_the_base(tmp_path):
    assert base_licence(DEFAULT_MODEL) == "apache-2.0"
    (tmp_path / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# a model\n")
    assert base_licence(str(tmp_path)) == "mit"
    assert base_licence("someone/unknown-model") is None
    facts = CardFacts(DEFAULT_MODEL, "qlora", {}, {"model": DEFAULT_MODEL},
                      ["train: `a.jsonl`: 3 rows"], "chatml")
    card = card_text("adapter", facts, licence="apache-2.0")
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and {"qlora", "lora"} <= set(meta["tags"])
    assert "`apache-2.0`, as the base model's, apply" in card and "A QLoRA adapter for" in card


def test_benchmarks_and_judge_are_in_the_card():
    compare = {"benchmarks": {"tasks": {"gsm8k": {"exact_match,flexible-extract": {
        "base": 0.25, "tuned": 0.375, "base_stderr": 0.05, "tuned_stderr": 0.06, "change": 0.125,
        "change_stderr": 0.07}}}, "falls": []},
        "judge": {"judge": "judge-model", "n": 4, "wins": 3, "ties": 0, "losses": 1,
                  "win_rate": 0.75}}
    card = card_text("adapter", CardFacts("base", "lora", {}, {}, [], "chatml"), compare)
    assert "| gsm8k | exact_match,flexible-extract | 25.0 ± 5.0 | 37.5 ± 6.0 | +12.5 |" in card
    assert "judge-model (both orders): 3 wins, 0 ties, 1 losses of 4; win rate 75.0%" in card
