"""The Python API: every public name resolves, and a run through `chattune.run_training` returns its
results."""

import chattune


def test_every_public_name_resolves():
    for name in chattune.__all__:
        assert getattr(chattune, name) is not None, name


def test_train_through_the_api(tmp_path, tiny_model_dir, gsm8k_small):
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "data": {"train": str(gsm8k_small),
                                          "columns": {"question": "user", "answer": "assistant"}},
                                 "max_steps": 2, "per_device_train_batch_size": 4, "merge": False})
    result = chattune.run_training(cfg)
    assert len([r for r in result.records if "loss" in r]) == 2 and result.final_loss > 0
    assert result.data.rows == 12 and (tmp_path / "out" / "adapter"
                                       / "adapter_config.json").is_file()
    # merge: false keeps the adapter alone, with its card
    assert (not (tmp_path / "out" / "merged").exists()
            and (tmp_path / "out" / "adapter" / "README.md").is_file())
    r = chattune.render(chattune.load_model_and_tokenizer(str(tiny_model_dir))[1],
                        [{"role": "user", "content": "2+2?"},
                         {"role": "assistant", "content": "4"}])
    # <|im_end|>, then "\n"
    assert [t for t in r.labels if t != chattune.IGNORE_INDEX][-1] == r.input_ids[-2]


def test_train_with_skipped_rows_and_a_held_out_eval(tmp_path, tiny_model_dir, gsm8k_small, capsys):
    from conftest import write_jsonl

    broken = write_jsonl(tmp_path / "broken.jsonl", [{"question": "no answer here"}])
    cfg = chattune.build_config({"model": str(tiny_model_dir), "output_dir": str(tmp_path / "out"),
                                 "data": {"train": [str(gsm8k_small), str(broken)], "test_size": 3,
                                          "on_bad_row": "skip",
                                          "columns": {"question": "user", "answer": "assistant"}},
                                 "max_steps": 2, "eval_steps": 2, "per_device_train_batch_size": 4,
                                 "merge": False})
    result = chattune.run_training(cfg)
    out = capsys.readouterr().out
    assert result.data.rows == 13 and result.data.bad == 1 and "skipped: 1 x" in out
    assert "3 examples held out" in out
    assert any("eval_loss" in r for r in result.records)
