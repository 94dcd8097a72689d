"""Benchmark: training throughput and memory, chattune vs TRL's SFTTrainer, same model, data and settings.

Each run is its own process (so peak RSS is its own): SmolLM2-135M-Instruct on the first rows of gsm8k train
as chats (prompt masked), the same max_length, batch, learning rate, schedule and LoRA settings. TRL is
configured as its docs show (conversational prompt/completion dataset, `SFTConfig`, `peft_config`), with its
own defaults otherwise. The first steps are warm-up and not timed.

    make bench-train         # or: .venv/bin/python bench/train_speed.py [--modes lora full] [--steps 12]

Prints trained and all tokens/s, peak RSS, the ratios, MFU against this machine's measured matmul peak and
both final losses, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "gsm8k" / "train.jsonl.gz"
WARMUP_STEPS = 2
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}


def _rows(n: int) -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _summary(step_times: list[float], step_tokens: list[int], step_trained: list[int], losses: list[float]) -> dict:
    timed = slice(WARMUP_STEPS, None)
    seconds = sum(step_times[timed])
    return {"steps": len(step_times), "timed_steps": len(step_times[timed]), "timed_s": seconds,
            "tokens_per_s": sum(step_tokens[timed]) / seconds,
            "trained_tokens_per_s": sum(step_trained[timed]) / seconds,
            "final_loss": sum(losses[-3:]) / len(losses[-3:]), "losses": losses, "peak_rss_mb": _peak_rss_mb()}


def run_chattune(args: argparse.Namespace) -> dict:
    from chattune.batching.prepare import examples_from_file
    from chattune.config import DEFAULT_MODEL, build_config
    from chattune.model.load import load_model_and_tokenizer
    from chattune.model.lora import apply_lora
    from chattune.train.loop import train

    model, tokenizer = load_model_and_tokenizer(DEFAULT_MODEL)
    examples, _ = examples_from_file(str(DATA), tokenizer, columns={"question": "user", "answer": "assistant"},
                                     max_length=args.max_length, limit=args.rows)
    cfg = build_config({"data": {"train": str(DATA)}, "finetuning": args.mode, "lora": LORA, "max_steps": args.steps,
                        "per_device_train_batch_size": args.batch, "learning_rate": args.lr, "warmup_ratio": 0.1,
                        "max_length": args.max_length, "logging_steps": 1, "bf16": args.bf16,
                        "gradient_checkpointing": args.checkpointing, "seed": 0})
    if args.mode == "lora":
        model = apply_lora(model, cfg.lora, [])
    import torch

    records = train(model, examples, cfg, pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
                    dtype=torch.bfloat16 if args.bf16 else None)
    tokens = [r["tokens"] for r in records]
    trained = [r["trained_tokens"] for r in records]
    return _summary([r["step_time_s"] for r in records], [b - a for a, b in zip([0] + tokens, tokens)],
                    [b - a for a, b in zip([0] + trained, trained)], [r["loss"] for r in records])


def run_trl(args: argparse.Namespace) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import resolve_model_path

    model_dir = resolve_model_path(DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["question"]}],
                                      "completion": [{"role": "assistant", "content": r["answer"]}]}
                                     for r in _rows(args.rows)])
    config = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=args.steps, per_device_train_batch_size=args.batch,
                       learning_rate=args.lr, warmup_steps=0.1, lr_scheduler_type="cosine", max_length=args.max_length,
                       logging_steps=1, bf16=args.bf16, use_cpu=True, report_to=[], save_strategy="no", seed=0)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules="all-linear", task_type="CAUSAL_LM") if args.mode == "lora" else None
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=tokenizer,
                         peft_config=peft_config)
    counts: list[tuple[int, int]] = []
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else int(batch["input_ids"].numel())
        counts.append((real, int((batch["labels"][:, 1:] != -100).sum())))
        return batch

    trainer.data_collator = counting_collator
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.start)

    trainer.add_callback(StepTimer())
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    # the dataloader prefetches: the first len(times) batches are the ones trained on
    counts = counts[: len(times)]
    return {**_summary(times, [c[0] for c in counts], [c[1] for c in counts], losses),
            "gradient_checkpointing": config.gradient_checkpointing}


def matmul_peak(bf16: bool) -> float:
    """FLOP/s of a large matrix product on this machine, in the precision the runs use."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start)


def flops_per_token(mode: str) -> float:
    """Approximate training FLOPs per token: 6N for full fine-tuning, 4N for LoRA (no weight gradients for the
    frozen base), N = the parameters every token multiplies through (layers plus the output head)."""
    n_params = 134_515_008  # SmolLM2-135M, the tied embedding counted once, as the output head
    return (6 if mode == "full" else 4) * n_params


def orchestrate(args: argparse.Namespace) -> None:
    results: dict = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                     "rows": args.rows, "steps": args.steps, "warmup_steps": WARMUP_STEPS, "batch": args.batch,
                     "max_length": args.max_length, "bf16": args.bf16, "lora": LORA, "runs": {}}
    results["matmul_peak_flops"] = matmul_peak(args.bf16)
    engines = ["chattune", "trl"] + (["chattune_gc"] if args.checkpointing else [])
    for mode in args.modes:
        for engine in engines:
            print(f"running {engine} {mode} ({args.steps} steps) ...", flush=True)
            cmd = [sys.executable, __file__, "--worker", engine.removesuffix("_gc"), "--mode", mode,
                   "--steps", str(args.steps), "--rows", str(args.rows), "--batch", str(args.batch),
                   "--max-length", str(args.max_length), "--lr", str(args.lr if mode == "lora" else args.full_lr)]
            cmd += (["--bf16"] if args.bf16 else []) + (["--checkpointing"] if engine.endswith("_gc") else [])
            out = Path(tempfile.mkstemp(suffix=".json")[1])
            subprocess.run(cmd + ["--result", str(out)], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            run = json.loads(out.read_text())
            run["mfu"] = run["tokens_per_s"] * flops_per_token(mode) / results["matmul_peak_flops"]
            results["runs"][f"{engine}_{mode}"] = run
    print(f"\n{args.rows} gsm8k rows, batch {args.batch}, max_length {args.max_length}, "
          f"{'bf16' if args.bf16 else 'fp32'}, {results['cores']} cores; matmul peak "
          f"{results['matmul_peak_flops'] / 1e9:.0f} GFLOP/s; timed steps {WARMUP_STEPS + 1}-{args.steps}")
    print(f"  {'':18} {'tokens/s':>9} {'trained/s':>9} {'peak RSS':>9} {'MFU':>6} {'final loss':>10}")
    for name, run in results["runs"].items():
        print(f"  {name:18} {run['tokens_per_s']:9.0f} {run['trained_tokens_per_s']:9.0f} "
              f"{run['peak_rss_mb']:7.0f}MB {run['mfu']:6.1%} {run['final_loss']:10.3f}")
    for mode in args.modes:
        ours, theirs = results["runs"][f"chattune_{mode}"], results["runs"][f"trl_{mode}"]
        results[f"{mode}_speedup"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
        results[f"{mode}_memory_ratio"] = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
        print(f"{mode}: {results[f'{mode}_speedup']:.2f}x TRL's tokens/s, "
              f"{results[f'{mode}_memory_ratio']:.2f}x its peak memory")
        if f"chattune_gc_{mode}" in results["runs"]:
            gc = results["runs"][f"chattune_gc_{mode}"]
            print(f"{mode} with gradient checkpointing: {gc['tokens_per_s'] / theirs['tokens_per_s']:.2f}x TRL's "
                  f"tokens/s, {gc['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}x its peak memory")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (the first 2 not timed)")
    parser.add_argument("--rows", type=int, default=400, help="gsm8k train rows used")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate")
    parser.add_argument("--full-lr", type=float, default=2e-5, help="full fine-tuning learning rate")
    parser.add_argument("--bf16", action="store_true", help="bf16 for both (slow on a CPU without AMX)")
    parser.add_argument("--checkpointing", action="store_true",
                        help="also run chattune with gradient checkpointing (TRL's default), as chattune_gc")
    parser.add_argument("--out", default="bench/results/train_speed.json")
    parser.add_argument("--worker", choices=["chattune", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["lora", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (run_chattune if args.worker == "chattune" else run_trl)(args)
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
