"""GGUF export through llama.cpp's own converter and quantiser, verified in llama.cpp
(llama-cpp-python, pinned): the tiny model and the real default model, the template and end-of-turn
stop in the metadata, and bad input."""

import json
import shutil

import pytest

from chattune.cli import main

llama_cpp = pytest.importorskip("llama_cpp",
                                reason="GGUF export needs the gguf extra (llama-cpp-python)")


def gguf_fields(path):
    from gguf import GGUFReader

    return {name: field.contents() for name, field in GGUFReader(path).fields.items()
            if name.startswith(("tokenizer.chat_template", "tokenizer.ggml.e",
                                "general.file_type"))}


def is_end_of_generation(path, token_id):
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model),
                                                 token_id))
    finally:
        llm.close()


@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_k_m"])
def test_the_tiny_model_exports_verified_with_its_template_and_stop(
        tmp_path, tiny_model_dir, tokenizer, quant, capsys):
    out = tmp_path / f"tiny-{quant}.gguf"
    assert main(["export", "gguf", str(tiny_model_dir), str(out), "--quant", quant]) == 0
    said = capsys.readouterr().out
    assert f"verified ({quant}): top-1" in said and "stops at <|im_end|>" in said
    fields = gguf_fields(out)
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert is_end_of_generation(out, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    # no working files left beside it; the Ollama Modelfile names it, with the template and the stop
    assert (sorted(p.name for p in tmp_path.iterdir())
            == sorted([out.name, out.with_suffix(".Modelfile").name]))
    modelfile = out.with_suffix(".Modelfile").read_text()
    assert (modelfile.startswith(f"FROM ./{out.name}\nTEMPLATE")
            and 'PARAMETER stop "<|im_end|>"' in modelfile)


def test_a_llama3_template_marks_its_end_of_turn_as_a_stop_in_llama_cpp(tmp_path, tokenizer):
    """Llama 3 style: eos is a document end (here <|endoftext|>), turns end with <|eot_id|>:
    llama.cpp must stop at the latter."""
    from transformers import AutoTokenizer

    from chattune.model.tiny import make_tiny_model
    from chattune.outputs.save import write_pretrained
    from chattune.templates.setup import setup_template, stop_token_ids

    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    model = make_tiny_model(tok)
    setup_template(model, tok, "llama3")
    tok.eos_token = "<|endoftext|>"
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert tok.eos_token_id != eot and eot in stop_token_ids(tok)
    folder = tmp_path / "llama3-tiny"
    write_pretrained(model, tok, folder, stop_token_ids(tok))
    out = tmp_path / "llama3.gguf"
    assert main(["export", "gguf", str(folder), str(out), "--quant", "f16"]) == 0
    assert gguf_fields(out).get("tokenizer.ggml.eot_token_id") == eot
    assert is_end_of_generation(out, eot)


def test_bad_input_is_refused_with_nothing_half_written(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "m.gguf"
    out.write_text("an earlier export")
    assert main(["export", "gguf", str(tiny_model_dir), str(out)]) == 1
    assert ("exists; kept (pass --overwrite" in capsys.readouterr().err
            and out.read_text() == "an earlier export")

    unknown = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model_dir, unknown)
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config,
                                                     "architectures": ["NoSuchModelForCausalLM"]}))
    assert main(["export", "gguf", str(unknown), str(tmp_path / "u.gguf"), "--no-verify"]) == 1
    err = capsys.readouterr().err
    assert ("NoSuchModelForCausalLM is not supported by llama.cpp's converter" in err
            and "Traceback" not in err)

    bare = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, bare)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    assert main(["export", "gguf", str(bare), str(tmp_path / "b.gguf")]) == 1
    assert "has no chat template" in capsys.readouterr().err
    assert main(["export", "gguf", str(tiny_model_dir), str(tmp_path / "q.gguf"), "--quant",
                 "q3_xx"]) == 1
    assert "--quant q3_xx: choose from" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "no-template", "unknown-arch"]


def test_an_export_that_fails_its_check_is_not_written(tmp_path, tiny_model_dir, capsys,
                                                       monkeypatch):
    from chattune.export import verify

    monkeypatch.setitem(verify.TOP1_BOUND, "f16", 1.01)  # no file can meet it
    out = tmp_path / "m.gguf"
    assert main(["export", "gguf", str(tiny_model_dir), str(out)]) == 1
    err = capsys.readouterr().err
    assert ("NOT verified (f16): top-1" in err and "not written" in err
            and list(tmp_path.iterdir()) == [])


def test_a_full_disk_during_conversion_is_a_clear_error_with_nothing_left(
        tmp_path, tiny_model_dir, capsys, monkeypatch):
    """The converter (a subprocess) failing on a full disk, as it reports it: a message, no partial
    files."""
    import subprocess

    from chattune.export import gguf

    def full_disk(script, args):
        out = args[args.index("--outfile") + 1]
        with open(out, "wb") as f:
            f.write(b"GGUF partial")
        return subprocess.CompletedProcess([script], 1, "",
                                           "OSError: [Errno 28] No space left on device")

    monkeypatch.setattr(gguf, "run_tool", full_disk)
    out = tmp_path / "m.gguf"
    assert main(["export", "gguf", str(tiny_model_dir), str(out)]) == 1
    err = capsys.readouterr().err
    assert ("no space left on the device" in err and "nothing was written" in err
            and "Traceback" not in err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_k_m"])
def test_the_default_model_exports_verified(tmp_path, quant, capsys):
    out = tmp_path / f"smollm2-{quant}.gguf"
    assert main(["export", "gguf", "HuggingFaceTB/SmolLM2-135M-Instruct", str(out), "--quant",
                 quant]) == 0
    said = capsys.readouterr().out
    assert f"verified ({quant})" in said and "stops at <|im_end|>" in said
    if quant == "f16":
        assert "5/5 greedy answers equal" in said


def test_a_training_run_exports_verified_gguf_files_and_its_adapter_alone(
        tmp_path, tiny_model_dir, gsm8k_small, capsys):
    import chattune

    columns = {"question": "user", "answer": "assistant"}
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "run"),
                                 "data": {"train": str(gsm8k_small), "columns": columns},
                                 "max_steps": 2, "per_device_train_batch_size": 2,
                                 "export": {"gguf": ["f16"]}})
    result = chattune.run_training(cfg)
    out = tmp_path / "run"
    assert ([e["file"] for e in result.exports] == ["run-f16.gguf"]
            and (out / "run-f16.gguf").is_file())
    assert result.exports[0]["verification"].startswith("verified (f16)")
    assert json.loads((out / "exports.json").read_text()) == result.exports
    assert "<h2>Exports</h2>" in (out / "report.html").read_text()

    # the LoRA alone as a GGUF adapter: llama.cpp's base + --lora gives the merged model's greedy
    # answers
    lora = tmp_path / "adapter.gguf"
    assert main(["export", "gguf", str(out), str(lora), "--adapter-only"]) == 0
    said = capsys.readouterr().out
    assert "base + adapter in llama.cpp against the merged model: verified (f16)" in said
    assert ("5/5 greedy answers equal" in said and lora.stat().st_size
            < (out / "run-f16.gguf").stat().st_size)


def test_an_unknown_export_type_in_a_config_stops_before_training(
        tmp_path, tiny_model_dir, gsm8k_small):
    import chattune
    from chattune.errors import ExportError

    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "run"),
                                 "data": {"train": str(gsm8k_small),
                                          "columns": {"question": "user", "answer": "assistant"}},
                                 "max_steps": 2, "export": {"gguf": ["q9_k"]}})
    with pytest.raises(ExportError, match="q9_k"):
        chattune.run_training(cfg)
    assert not (tmp_path / "run" / "adapter").exists()
