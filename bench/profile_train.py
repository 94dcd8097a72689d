"""Profile training steps of the `make bench-train` shape with torch.profiler and print the top
operators.

SmolLM2-135M-Instruct on the first gsm8k train rows (prompt masked), batch 8, max_length 512, as
bench/train_speed.py runs chattune; the last of --steps steps is profiled (the first ones warm up).

    .venv/bin/python bench/profile_train.py --mode lora [--bf16] [--steps 3] [--rows 25]

Each step's line also counts the pages the kernel faulted in for it (minor faults): a step that
reaches a new peak of memory pages it in on first touch, which on a VM can cost as much as compute.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import DATA, LORA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["lora", "full"], default="lora")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--steps", type=int, default=3, help="steps run; the last one is profiled")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=25, help="operators printed")
    parser.add_argument("--shapes", action="store_true", help="group operators by input shapes too")
    args = parser.parse_args()

    import chattune.train.loop as loop
    from chattune.config import DEFAULT_MODEL, build_config
    from chattune.model.load import load_model, load_tokenizer, resolve_model_path
    from chattune.model.lora import apply_lora
    from chattune.prepare.examples import examples_from_file

    model_dir = resolve_model_path(DEFAULT_MODEL)
    base = torch.bfloat16 if args.bf16 and args.mode == "lora" else torch.float32
    model, tokenizer = load_model(model_dir, dtype=base), load_tokenizer(model_dir)
    examples, _ = examples_from_file(str(DATA), tokenizer,
                                     columns={"question": "user", "answer": "assistant"},
                                     max_length=512, limit=400)
    cfg = build_config({"data": {"train": str(DATA)}, "finetuning": args.mode, "lora": LORA,
                        "max_steps": args.steps, "per_device_train_batch_size": args.batch,
                        "warmup_ratio": 0.1, "max_length": 512,
                        "learning_rate": 1e-3 if args.mode == "lora" else 2e-5, "logging_steps": 1,
                        "bf16": args.bf16, "seed": 0, "device": "cpu"})
    if args.mode == "lora":
        model = apply_lora(model, cfg.lora, [])
    step, profiled, faults = loop._optimizer_step, [], []

    def profiled_step(*a: Any, **k: Any) -> Any:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if len(profiled) < args.steps - 1:
            profiled.append(None)
            out = step(*a, **k)
        else:
            with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
                out = step(*a, **k)
            profiled.append(prof)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return out

    loop._optimizer_step = profiled_step
    records = loop.train(model, examples, cfg.train_args(), pad_id=tokenizer.pad_token_id,
                         device=torch.device("cpu"), dtype=torch.bfloat16 if args.bf16 else None)
    for r, paged in zip(records, faults):
        print(f"step {r['step']}: loss {r['loss']:.4f}, {r['step_time_s']:.2f} s, "
              f"{r['tokens_per_s']:.0f} tokens/s, {paged} pages faulted in")
    table = profiled[-1].key_averages(group_by_input_shape=args.shapes)
    print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=50))


if __name__ == "__main__":
    main()
