"""Benchmark: training throughput and memory, chattune vs TRL's SFTTrainer, same model, data and
settings.

Each run is its own process (so peak RSS is its own): SmolLM2-135M-Instruct on the first rows of
gsm8k train as chats (prompt masked), the same max_length, batch, learning rate, schedule and LoRA
settings. TRL is configured as its docs show (conversational prompt/completion dataset, `SFTConfig`,
`peft_config`), with its own defaults otherwise. The first steps are warm-up and not timed.

    make bench-train         # or: .venv/bin/python bench/train_speed.py [--modes lora full]
    [--steps 12]

On a CPU with AMX or AVX512-BF16 every run is made twice, fp32 and bf16 (`--precisions` chooses);
`--variants reference` adds chattune with its exact CPU speed paths off (peft's LoRA layers, the
recomputing loss, AdamW's for-loop). `--repeat N` makes N rounds of every run and reports each run's
median, for a machine whose speed moves from run to run.

On a GPU, a random-init model of a real shape (no hub needed), with and without packing, and TRL
both with its default gradient checkpointing and without it:

    python bench/train_speed.py --device cuda --bf16 --shape smollm2-1.7b --batch 16 \
        --max-length 1024 --rows 400 --steps 12 --checkpointing [--packing]

Prints trained and all tokens/s, peak memory (GPU: allocated by tensors; CPU: RSS), the ratios, MFU
against the device's measured matmul peak (in the run's precision) and both final losses, and writes
them as JSON with the machine (CPU model and flags, GPU), date, library versions and git commit
(bench/machine.py).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
from shapes import SHAPES, build_model_dir, count_params  # noqa: E402

DATA = ROOT / "data" / "gsm8k" / "train.jsonl.gz"
WARMUP_STEPS = 2
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}


def _rows(n: int) -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _summary(step_times: list[float], step_tokens: list[int], step_trained: list[int],
             losses: list[float]) -> dict:
    timed = slice(WARMUP_STEPS, None)
    seconds = sum(step_times[timed])
    return {"steps": len(step_times), "timed_steps": len(step_times[timed]), "timed_s": seconds,
            "tokens_per_s": sum(step_tokens[timed]) / seconds,
            "trained_tokens_per_s": sum(step_trained[timed]) / seconds,
            "final_loss": sum(losses[-3:]) / len(losses[-3:]), "losses": losses,
            # every step, the warm-up's one-time costs (first allocations, compiling) included
            "all_steps_tokens_per_s": sum(step_tokens) / sum(step_times),
            "step_s": [round(t, 3) for t in step_times], "step_tokens": step_tokens,
            "peak_rss_mb": _peak_rss_mb()}


FEATURES = {"padding_free": bool, "liger": bool, "compile": bool, "checkpointing": bool,
            "attn": str, "max_tokens": int, "reference": bool}


def parse_features(spec: str | None) -> dict:
    """A chattune variant's speed features, e.g. "padding_free,attn=flex_attention,liger" ->
    {"padding_free": True, "attn": "flex_attention", "liger": True}."""
    features: dict = {}
    for item in filter(None, (spec or "").split(",")):
        key, _, value = item.partition("=")
        if key not in FEATURES or (FEATURES[key] is not bool) != bool(value):
            raise SystemExit(f"--variants: {item!r} is not one of padding_free, liger, compile, "
                             "checkpointing, attn=KERNEL, max_tokens=N, reference")
        features[key] = FEATURES[key](value) if value else True
    return features


def run_chattune(args: argparse.Namespace) -> dict:
    import torch

    from chattune.config import DEFAULT_MODEL, build_config
    from chattune.model.device import memory_stats, resolve_device, resolve_precision
    from chattune.model.load import load_model, load_tokenizer, resolve_model_path
    from chattune.model.lora import apply_lora
    from chattune.prepare.examples import examples_from_file
    from chattune.train.loop import train
    from chattune.train.speed import apply_liger, attention_kernel

    device = resolve_device(args.device)
    precision = resolve_precision(device, finetuning=args.mode, bf16=args.bf16)
    features = parse_features(args.features)
    padding_free = args.padding_free or bool(features.get("padding_free"))
    # as chattune train chooses it
    kernel = attention_kernel(features.get("attn"), padding_free, device)
    attention = {"attn_implementation": kernel} if kernel else {}
    model_dir = args.model_dir or resolve_model_path(DEFAULT_MODEL)
    # a random-init shape: bf16 frozen base for LoRA, fp32 master weights for full
    model, tokenizer = (load_model(model_dir, dtype=precision.base, extra=attention),
                        load_tokenizer(model_dir))
    model.to(device)
    if features.get("liger"):
        apply_liger(model, device)  # before LoRA wraps the layers it patches
    examples, _ = examples_from_file(str(DATA), tokenizer,
                                     columns={"question": "user", "answer": "assistant"},
                                     max_length=args.max_length, limit=args.rows)
    cfg = build_config({"data": {"train": str(DATA)}, "finetuning": args.mode, "lora": LORA,
                        "max_steps": args.steps, "per_device_train_batch_size": args.batch,
                        "learning_rate": args.lr, "warmup_ratio": 0.1,
                        "max_length": args.max_length, "logging_steps": 1, "bf16": args.bf16,
                        "gradient_checkpointing": args.checkpointing
                        or bool(features.get("checkpointing")),
                        "seed": 0, "packing": args.packing, "device": args.device,
                        "max_tokens_per_batch": features.get("max_tokens", args.max_tokens),
                        "padding_free": padding_free,
                        "compile": bool(features.get("compile"))})
    if args.mode == "lora":
        model = apply_lora(model, cfg.lora, [], fast=not features.get("reference"))
    if features.get("reference"):
        reference_paths(model)
    records = train(model, examples, cfg.train_args(), pad_id=tokenizer.pad_token_id, device=device,
                    dtype=precision.compute)
    tokens = [r["tokens"] for r in records]
    trained = [r["trained_tokens"] for r in records]
    return {**_summary([r["step_time_s"] for r in records],
                       [b - a for a, b in zip([0] + tokens, tokens)],
                       [b - a for a, b in zip([0] + trained, trained)],
                       [r["loss"] for r in records]),
            **memory_stats(device), "cuda": torch.cuda.is_available() and device.type == "cuda"}


def reference_paths(model: Any) -> None:
    """The `reference` variant: chattune's exact speed paths off (peft's own LoRA layers, set by the
    caller; the LM head's logits recomputed in backward; AdamW's for-loop on a CPU), as chattune
    trained before them."""
    import chattune.train.optim as optim
    from chattune.model.lora import base_model
    from chattune.train.loss import RECOMPUTE_LOSS

    setattr(base_model(model), RECOMPUTE_LOSS, True)
    optim.fused_adamw = lambda params: all(p.is_cuda for p in params)


def run_trl(args: argparse.Namespace) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from chattune.config import DEFAULT_MODEL
    from chattune.model.load import resolve_model_path

    model_dir = args.model_dir or resolve_model_path(DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["question"]}],
                                      "completion": [{"role": "assistant", "content": r["answer"]}]}
                                     for r in _rows(args.rows)])
    config = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=args.steps,
                       per_device_train_batch_size=args.batch, learning_rate=args.lr,
                       warmup_steps=0.1, lr_scheduler_type="cosine", max_length=args.max_length,
                       logging_steps=1, bf16=args.bf16, use_cpu=args.device == "cpu", report_to=[],
                       save_strategy="no", seed=0, packing=args.packing,
                       gradient_checkpointing=not args.trl_no_checkpointing)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules="all-linear",
                             task_type="CAUSAL_LM") if args.mode == "lora" else None
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=tokenizer,
                         peft_config=peft_config)
    counts: list[tuple[int, int]] = []
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        real = (int(batch["attention_mask"].sum()) if "attention_mask" in batch
                else int(batch["input_ids"].numel()))
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
    import torch

    memory = {}
    if torch.cuda.is_available() and args.device != "cpu":
        memory = {"peak_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
                  "peak_memory_reserved_gb": torch.cuda.max_memory_reserved() / 1e9}
    return {**_summary(times, [c[0] for c in counts], [c[1] for c in counts], losses),
            "gradient_checkpointing": config.gradient_checkpointing, **memory}


def matmul_peak(bf16: bool, device: str = "cpu") -> float:
    """FLOP/s of a large matrix product on this machine's CPU or GPU, in the precision the runs
    use."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    size = 8192 if device != "cpu" else 2048
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    a @ b
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    sync()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3:
        a @ b
        n += 1
        sync()
    return 2 * size**3 * n / (time.perf_counter() - start)


def flops_per_token(mode: str, n_params: int = 134_515_008) -> float:
    """Approximate training FLOPs per token: 6N for full fine-tuning, 4N for LoRA (no weight
    gradients for the frozen base), N = the parameters every token multiplies through (layers plus
    the output head; the default is SmolLM2-135M's, the tied embedding counted once)."""
    return (6 if mode == "full" else 4) * n_params


def _memory(run: dict) -> str:
    if "peak_memory_allocated_gb" in run:
        return f"{run['peak_memory_allocated_gb']:7.1f}GB"
    return f"{run['peak_rss_mb'] / 1000:7.1f}GB"


def precisions_of(args: argparse.Namespace) -> list[str]:
    """--precisions as given; else bf16 alone with --bf16; else fp32, and bf16 too on a CPU that
    computes it in hardware (AMX or AVX512-BF16), each a run of its own."""
    if args.precisions:
        return args.precisions
    if args.bf16:
        return ["bf16"]
    from chattune.model.device import cpu_has_fast_bf16

    return ["fp32", "bf16"] if args.device == "cpu" and cpu_has_fast_bf16() else ["fp32"]


def _worker_cmd(args: argparse.Namespace, engine: str, mode: str, bf16: bool,
                model_dir: Path | None) -> list[str]:
    worker, _, variant = engine.partition("[")
    cmd = [sys.executable, __file__, "--worker", worker.split("_")[0], "--mode", mode,
           "--steps", str(args.steps), "--rows", str(args.rows), "--batch", str(args.batch),
           "--max-length", str(args.max_length), "--device", args.device,
           "--lr", str(args.lr if mode == "lora" else args.full_lr)]
    cmd += (["--bf16"] if bf16 else []) + (["--packing"] if args.packing else [])
    cmd += ["--max-tokens", str(args.max_tokens)] if args.max_tokens else []
    cmd += ["--padding-free"] if args.padding_free else []
    cmd += (["--checkpointing"] if engine == "chattune_gc" else [])
    cmd += (["--trl-no-checkpointing"] if engine == "trl_nogc" else [])
    cmd += ["--model-dir", str(model_dir)] if model_dir else []
    cmd += ["--features", variant.rstrip("]")] if variant else []
    return cmd


def _run(cmd: list[str], name: str) -> dict:
    """One worker process; a failure (out of memory, a missing kernel) is recorded and spoils no
    other run."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    done = subprocess.run(cmd + ["--result", str(out)], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        print(f"{name} failed (exit {done.returncode})", flush=True)
        return {"failed": done.returncode}
    return json.loads(out.read_text())


def _model_dir(args: argparse.Namespace, tmp: str) -> tuple[Path | None, int]:
    """The random-init shape's directory (built once, kept with --keep-models) and its parameters
    per token."""
    if args.shape == "default":
        return None, 134_515_008
    model_dir = Path(args.keep_models or tmp) / args.shape
    if not (model_dir / "config.json").is_file():  # kept from an earlier invocation: built once
        building = model_dir.with_name(model_dir.name + ".building")
        build_model_dir(args.shape, building)
        building.rename(model_dir)
    return model_dir, count_params(model_dir)


def orchestrate(args: argparse.Namespace) -> None:
    precisions = precisions_of(args)
    results: dict = {"machine": platform.machine(), **machine.record(args.device),
                     "shape": args.shape, "packing": args.packing, "rows": args.rows,
                     "steps": args.steps, "warmup_steps": WARMUP_STEPS, "batch": args.batch,
                     "max_length": args.max_length, "precisions": precisions,
                     "bf16": precisions == ["bf16"], "lora": LORA, "runs": {}}
    peaks = {p: matmul_peak(p == "bf16", args.device) for p in precisions}
    results["matmul_peak_flops"], results["matmul_peak_flops_by_precisio"
                                          "n"] = peaks[precisions[0]], peaks
    engines = ["chattune", "trl"] + (["chattune_gc", "trl_nogc"] if args.checkpointing else [])
    engines += [f"chattune[{variant}]" for variant in args.variants]
    for variant in args.variants:
        # a typo stops the benchmark before the first run, not after the others
        parse_features(variant)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, n_params = _model_dir(args, tmp)
        results["params_per_token"], results["repeat"] = n_params, args.repeat
        samples: dict[str, list[dict]] = {}
        # whole rounds, so a drift of the machine's speed falls on every run alike
        for _ in range(args.repeat):
            for precision in precisions:
                for mode in args.modes:
                    for engine in engines:
                        name = f"{engine}_{mode}{run_suffix(precision, precisions)}"
                        samples.setdefault(name, []).append(
                            _measured(args, name, engine, mode, precision, model_dir,
                                      flops_per_token(mode, n_params) / peaks[precision]))
                        results["runs"][name] = _median(samples[name])
                        # a run cut short by a time limit keeps what it measured
                        _write(results, args.out)
    _report(results, args)
    _write(results, args.out)
    print(f"wrote {args.out}")


def _measured(args: argparse.Namespace, name: str, engine: str, mode: str, precision: str,
              model_dir: Path | None, mfu_per_token: float) -> dict:
    print(f"running {name} ({args.steps} steps) ...", flush=True)
    run = _run(_worker_cmd(args, engine, mode, precision == "bf16", model_dir), name)
    if "failed" not in run:
        run["precision"] = precision
        run["mfu"] = run["tokens_per_s"] * mfu_per_token
        print(f"{name}: {run['tokens_per_s']:.0f} tokens/s, MFU {run['mfu']:.1%}", flush=True)
    return run


def _median(runs: list[dict]) -> dict:
    """The run of median tokens/s (the lower middle of an even count), with every run's tokens/s;
    a failed run counts only when none succeeded."""
    done = sorted((r for r in runs if "failed" not in r), key=lambda r: r["tokens_per_s"])
    if not done:
        return runs[-1]
    return {**done[(len(done) - 1) // 2],
            "tokens_per_s_runs": [r["tokens_per_s"] for r in runs if "failed" not in r]}


def run_suffix(precision: str, precisions: list[str]) -> str:
    """fp32 runs keep the plain names (chattune_lora); bf16 ones are chattune_lora_bf16 beside fp32
    ones."""
    return f"_{precision}" if precision != "fp32" and len(precisions) > 1 else ""


def _report(results: dict, args: argparse.Namespace) -> None:
    """The table of runs, then per precision and mode: tokens/s and peak memory against TRL's, and
    final losses."""
    gpu = any("peak_memory_allocated_gb" in r for r in results["runs"].values())
    peaks = ", ".join(f"{p} {f / 1e9:.0f} GFLOP/s"
                      for p, f in results["matmul_peak_flops_by_precision"].items())
    print(f"\n{args.shape} shape on {args.device} ({results.get('gpu') or results['cpu']}), "
          f"{args.rows} gsm8k rows, batch {args.batch}, max_length "
          f"{args.max_length}{', packing' if args.packing else ''}, {results['cores']} cores; "
          f"matmul peak {peaks}; timed steps {WARMUP_STEPS + 1}-{args.steps}")
    width = max(18, *(len(name) for name in results["runs"]))
    print(f"  {'':{width}} {'tokens/s':>9} {'trained/s':>9} {'peak GPU' if gpu else 'peak RSS':>9} "
          f"{'MFU':>6} {'final loss':>10}")
    for name, run in results["runs"].items():
        if "failed" in run:
            print(f"  {name:{width}} failed (exit {run['failed']})")
            continue
        print(f"  {name:{width}} {run['tokens_per_s']:9.0f} {run['trained_tokens_per_s']:9.0f} "
              f"{_memory(run)} {run['mfu']:6.1%} {run['final_loss']:10.3f}")
    memory_key = "peak_memory_allocated_gb" if gpu else "peak_rss_mb"
    for precision in results["precisions"]:
        for mode in args.modes:
            _compare(results, f"{mode}{run_suffix(precision, results['precisions'])}", memory_key,
                     precision)


def _compare(results: dict, key: str, memory_key: str, precision: str) -> None:
    """Ratios of chattune's runs (and variants) of `key` (e.g. lora_bf16) to TRL's, kept in
    `results`."""
    runs = results["runs"]
    ours, theirs = runs.get(f"chattune_{key}", {"failed": 1}), runs.get(f"trl_{key}", {"failed": 1})
    if "failed" in ours or "failed" in theirs:
        return
    for name, run in runs.items():
        if name.startswith("chattune[") and name.endswith(f"_{key}") and "failed" not in run:
            results[f"{name}_speedup"] = run["tokens_per_s"] / theirs["tokens_per_s"]
            print(f"{name}: {results[f'{name}_speedup']:.2f}x TRL's tokens/s, "
                  f"{run[memory_key] / theirs[memory_key]:.2f}x its peak memory")
    results[f"{key}_speedup"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
    results[f"{key}_memory_ratio"] = ours[memory_key] / theirs[memory_key]
    print(f"{key} ({precision}): {results[f'{key}_speedup']:.2f}x TRL's tokens/s, "
          f"{results[f'{key}_memory_ratio']:.2f}x its peak memory; final loss "
          f"{ours['final_loss']:.3f} vs TRL's {theirs['final_loss']:.3f}")
    if "all_steps_tokens_per_s" in ours and "all_steps_tokens_per_s" in theirs:
        whole = ours["all_steps_tokens_per_s"] / theirs["all_steps_tokens_per_s"]
        results[f"{key}_speedup_all_steps"] = whole
        print(f"  over all {ours['steps']} steps, warm-up included: {whole:.2f}x "
              f"({ours['all_steps_tokens_per_s']:.0f} vs {theirs['all_steps_tokens_per_s']:.0f} "
              "tokens/s)")
    for engine in ("chattune_gc", "trl_nogc"):
        if f"{engine}_{key}" in runs and "failed" not in runs[f"{engine}_{key}"]:
            run = runs[f"{engine}_{key}"]
            print(f"{engine} {key}: {run['tokens_per_s'] / theirs['tokens_per_s']:.2f}x TRL's "
                  f"tokens/s, {run[memory_key] / theirs[memory_key]:.2f}x its peak memory")


def _write(results: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every run; each run reports its median (tokens/s)")
    parser.add_argument("--steps", type=int, default=12,
                        help="optimizer steps per run (the first 2 not timed)")
    parser.add_argument("--rows", type=int, default=400, help="gsm8k train rows used")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate")
    parser.add_argument("--full-lr", type=float, default=2e-5,
                        help="full fine-tuning learning rate")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 alone for both (slow on a CPU without AMX)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                        help="each a run of every engine and mode (default: fp32, and bf16 too on "
                        "a CPU with AMX or AVX512-BF16; bf16 alone with --bf16)")
    parser.add_argument("--checkpointing", action="store_true",
                        help="also run chattune with gradient checkpointing (TRL's default), as "
                        "chattune_gc, and TRL without it, as trl_nogc")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU benchmark")
    parser.add_argument("--shape", default="default", choices=["default", *sorted(SHAPES)],
                        help="default: SmolLM2-135M-Instruct itself; else a random-init model of "
                             "that shape")
    parser.add_argument("--packing", action="store_true", help="packing on for both")
    parser.add_argument("--max-tokens", type=int,
                        help="chattune only: micro-batches of up to N tokens (e.g. 16384) "
                        "instead of --batch rows")
    parser.add_argument("--padding-free", action="store_true",
                        help="chattune only: padding-free micro-batches")
    parser.add_argument("--variants", nargs="*", default=[], metavar="FEATURES",
                        help="more chattune runs, each with these speed features (comma-separated: "
                        "padding_free, liger, compile, checkpointing, attn=KERNEL, max_tokens=N; "
                        "or reference: chattune's exact CPU speed paths off), e.g. "
                        "padding_free,attn=flex_attention")
    parser.add_argument("--keep-models", metavar="DIR",
                        help="build the random-init shapes in DIR and reuse them in "
                        "later invocations (default: a temporary folder)")
    parser.add_argument("--features", help=argparse.SUPPRESS)
    parser.add_argument("--trl-no-checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out",
                        help="JSON results (default bench/results/train_speed[-DEVICE-SHAPE].json)")
    parser.add_argument("--worker", choices=["chattune", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["lora", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.out is None:
        suffix = ("" if args.device == "cpu" and args.shape == "default"
                  else f"-{args.device}-{args.shape}")
        args.out = f"bench/results/train_speed{suffix}.json"
    if args.worker:
        result = (run_chattune if args.worker == "chattune" else run_trl)(args)
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
