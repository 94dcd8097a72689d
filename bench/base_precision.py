"""Benchmark: LoRA with the frozen base in bf16 (chattune now) vs in fp32 under bf16 autocast
(chattune before, and what a model loaded in fp32 gets), same model, data and settings, each in its
own process.

Random-init models of real shapes (throughput and memory do not depend on the weights), the SmolLM2
tokenizer, gsm8k train as chats (prompt masked), LoRA r=16 alpha=32 on all linear layers, bf16
compute. On CUDA it prints peak GPU memory (allocated and reserved), tokens/s and the ratios; on a
CPU it runs the same code (use a small shape: `--shape tiny`) and prints peak RSS.

    python bench/base_precision.py --shape smollm2-1.7b --batch 16 --max-length 1024 --steps 6
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import SHAPES, build_model_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "gsm8k" / "train.jsonl.gz"
WARMUP_STEPS = 2
def worker(args: argparse.Namespace) -> dict:
    import torch

    from chattune.config import build_config
    from chattune.model.device import memory_stats, resolve_device
    from chattune.model.load import load_model, load_tokenizer
    from chattune.model.lora import apply_lora
    from chattune.prepare.examples import examples_from_file
    from chattune.train.loop import train

    device = resolve_device(args.device)
    base_dtype = torch.bfloat16 if args.base == "bf16" else torch.float32
    model = load_model(args.model_dir, dtype=base_dtype).to(device)
    tokenizer = load_tokenizer(args.model_dir)
    examples, _ = examples_from_file(str(DATA), tokenizer,
                                     columns={"question": "user", "answer": "assistant"},
                                     max_length=args.max_length, limit=args.batch * args.steps)
    cfg = build_config({"data": {"train": str(DATA)},
                        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
                        "max_steps": args.steps, "per_device_train_batch_size": args.batch,
                        "learning_rate": 1e-4, "max_length": args.max_length, "logging_steps": 1,
                        "seed": 0, "device": args.device})
    model = apply_lora(model, cfg.lora)
    start = time.perf_counter()
    records = train(model, examples, cfg.train_args(), pad_id=tokenizer.pad_token_id, device=device,
                    dtype=torch.bfloat16)
    timed = records[WARMUP_STEPS:]
    seconds = sum(r["step_time_s"] for r in timed)
    tokens = timed[-1]["tokens"] - records[WARMUP_STEPS - 1]["tokens"]
    return {"base": args.base, "tokens_per_s": tokens / seconds,
            "wall_s": time.perf_counter() - start,
            "final_loss": records[-1]["loss"], **memory_stats(device),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-1.7b")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--worker", choices=["bf16", "fp32"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.base = args.worker
        Path(args.result).write_text(json.dumps(worker(args)))
        return
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        build_model_dir(args.shape, model_dir)
        for base in ("fp32", "bf16"):
            result = Path(tmp) / f"{base}.json"
            cmd = [sys.executable, __file__, "--worker", base, "--model-dir", str(model_dir),
                   "--result", str(result),
                   "--device", args.device, "--batch", str(args.batch), "--max-length",
                   str(args.max_length), "--steps", str(args.steps)]
            subprocess.run(cmd, check=True)
            runs[base] = json.loads(result.read_text())
    key = ("peak_memory_allocated_gb"
           if "peak_memory_allocated_gb" in runs["bf16"] else "peak_rss_gb")
    print(f"{args.shape}, batch {args.batch} x max_length {args.max_length}, LoRA r=16 all-linear, "
          "bf16 compute:")
    for base, r in runs.items():
        extra = (f", reserved {r['peak_memory_reserved_gb']:.2f} GB"
                 if "peak_memory_reserved_gb" in r else "")
        print(f"  base in {base}: {r['tokens_per_s']:,.0f} tokens/s, {key} {r[key]:.2f} GB{extra}, "
              f"final loss {r['final_loss']:.4f}")
    print(f"bf16 base / fp32 base: memory {runs['bf16'][key] / runs['fp32'][key]:.2f}x, "
          f"tokens/s {runs['bf16']['tokens_per_s'] / runs['fp32']['tokens_per_s']:.2f}x")
    out = ROOT / "bench" / "results" / f"base_precision-{args.shape}.json"
    out.write_text(json.dumps({"device": args.device, "shape": args.shape, "batch": args.batch,
                               "max_length": args.max_length, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
