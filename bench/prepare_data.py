"""Benchmark: preparing gsm8k train (7,473 rows) as chat for training, chattune vs TRL's SFTTrainer, same run.

Both turn each question/answer row into a chat rendered with SmolLM2's template, tokenise it and mask the
prompt (TRL: a conversational prompt/completion dataset, its documented way to train on completions only;
chattune: data.columns question=user answer=assistant). Both caches are cold: TRL works on an in-memory
dataset (nothing cached), chattune writes into an empty temporary cache, and is then timed again warm.

    make bench-data          # or: .venv/bin/python bench/prepare_data.py [--rows N] [--out FILE]

Prints rows/s for each, the ratios, and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "gsm8k" / "train.jsonl.gz"
MAX_LENGTH = 512


def trl_prepare(rows: list[dict], model_dir: Path, num_proc: int | None) -> tuple[float, int, int]:
    """Seconds, examples and trained tokens for SFTTrainer's own dataset preparation."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["question"]}],
                                      "completion": [{"role": "assistant", "content": r["answer"]}]} for r in rows])
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=MAX_LENGTH, dataset_num_proc=num_proc, report_to=[],
                     use_cpu=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds.select(range(4)), processing_class=tokenizer)
    start = time.perf_counter()
    # the same call SFTTrainer.__init__ makes for train_dataset; timed alone so model set-up is not counted
    out = trainer._prepare_dataset(ds, tokenizer, args, False, None, "train")
    seconds = time.perf_counter() - start
    trained = sum(sum(label != -100 for label in labels[1:]) for labels in out["labels"])
    return seconds, len(out), trained


def chattune_prepare(model_dir: Path, rows: int | None, num_proc: int | None) -> tuple[float, float, int, int]:
    """Seconds cold, seconds warm, examples and trained tokens for chattune's preparation."""
    from chattune.config import DataSource
    from chattune.model.load import load_tokenizer
    from chattune.prepare.examples import PrepareOptions, prepare_sources

    tokenizer = load_tokenizer(model_dir)
    spec = DataSource(path=str(DATA), columns={"question": "user", "answer": "assistant"}, num_samples=rows)
    opts = PrepareOptions(max_length=MAX_LENGTH)
    times = []
    for _ in range(2):  # cold, then warm from the cache the first call wrote
        start = time.perf_counter()
        examples, stats = prepare_sources([spec], tokenizer, opts, num_proc=num_proc)
        times.append(time.perf_counter() - start)
    assert stats.reused, "the second call should reuse the cache"
    return times[0], times[1], len(examples), stats.trained_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, help="use only the first N rows (default: all 7,473)")
    parser.add_argument("--out", default="bench/results/prepare_data.json", help="where to write the JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import resolve_model_path
    from chattune.prepare import cache

    model_dir = resolve_model_path(DEFAULT_MODEL)
    tmp_cache = Path(tempfile.mkdtemp(prefix="chattune-bench-cache-"))
    cache.prepared_dir = lambda: tmp_cache  # cold: an empty cache that no earlier run has seen

    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][: args.rows]
    cores = os.cpu_count() or 1
    cold, warm, ct_examples, ct_trained = chattune_prepare(model_dir, args.rows, None)
    trl_default, trl_examples, trl_trained = trl_prepare(rows, model_dir, None)
    trl_parallel, _, _ = trl_prepare(rows, model_dir, cores) if cores > 1 else (trl_default, 0, 0)

    n = len(rows)
    result = {
        "rows": n, "max_length": MAX_LENGTH, "cores": cores, "machine": platform.processor() or platform.machine(),
        "chattune": {"cold_s": cold, "warm_s": warm, "rows_per_s_cold": n / cold, "rows_per_s_warm": n / warm,
                     "examples": ct_examples, "trained_tokens": ct_trained, "num_proc": "auto"},
        "trl": {"default_s": trl_default, "rows_per_s_default": n / trl_default, "num_proc_default": None,
                f"num_proc_{cores}_s": trl_parallel, f"rows_per_s_num_proc_{cores}": n / trl_parallel,
                "examples": trl_examples, "trained_tokens": trl_trained},
        "ratio_cold_vs_trl_default": trl_default / cold,
        f"ratio_cold_vs_trl_num_proc_{cores}": trl_parallel / cold,
        "ratio_warm_vs_trl_default": trl_default / warm,
    }
    print(f"gsm8k train, {n} rows, max_length {MAX_LENGTH}, {cores} cores")
    print(f"  {'':34} {'seconds':>8} {'rows/s':>8}")
    print(f"  {'chattune (cold cache, auto procs)':34} {cold:8.2f} {n / cold:8.0f}")
    print(f"  {'chattune (warm cache)':34} {warm:8.2f} {n / warm:8.0f}")
    print(f"  {'TRL SFTTrainer (default: 1 proc)':34} {trl_default:8.2f} {n / trl_default:8.0f}")
    print(f"  {f'TRL SFTTrainer (num_proc={cores})':34} {trl_parallel:8.2f} {n / trl_parallel:8.0f}")
    print(f"ratio, cold: {result['ratio_cold_vs_trl_default']:.2f}x TRL's default, "
          f"{result[f'ratio_cold_vs_trl_num_proc_{cores}']:.2f}x TRL at num_proc={cores}; "
          f"warm: {result['ratio_warm_vs_trl_default']:.1f}x")
    print(f"trained tokens: chattune {ct_trained}, TRL {trl_trained} (TRL also trains the newline after each "
          f"<|im_end|>: {trl_trained - ct_trained} more, one per row)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
