"""`chattune train` as one library call: config -> data -> templates -> batching -> model -> train
-> outputs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from rich.table import Table

from chattune.batching.collate import Example
from chattune.config import TrainConfig
from chattune.engine.base import (
    load_base_model,
    load_tokenizer_with_template,
    run_info,
    template_description,
)
from chattune.engine.setup import Run, RunSettings, open_run
from chattune.engine.training import eval_prompts, save_final, train_with_outputs
from chattune.errors import DataError, ModelError, TrainingError
from chattune.eval.answers_compared import (
    CompareSet,
    add_to_compare_json,
    answer_and_score,
    load_compare_set,
    write_comparison,
)
from chattune.eval.benchmarks_compared import compare_benchmarks, comparison_table
from chattune.eval.harness import BenchmarkResults, run_benchmarks
from chattune.eval.judge import judge_pairs, summarise
from chattune.eval.judge_files import write_judgement
from chattune.eval.judges import OpenedJudge
from chattune.eval.tasks import resolve_tasks
from chattune.export.in_run import check_exports, export_run
from chattune.model.inference import dtype_named, load_for_inference, merge_saved_adapter
from chattune.model.load import (
    load_trained_weights,
    resolve_model_path,
)
from chattune.model.lora import apply_lora, base_model
from chattune.outputs.metrics import counting_progress
from chattune.outputs.model_card import run_facts, write_run_cards
from chattune.outputs.plots import plot_loss
from chattune.outputs.report import write_report
from chattune.outputs.run_info import RunInfo
from chattune.outputs.save import save_pretrained_atomic
from chattune.prepare.examples import PrepareOptions, prepare_sources, split_examples
from chattune.prepare.rows import PrepareStats, print_stats
from chattune.templates.setup import stop_token_ids
from chattune.train.fsdp import full_state_dict
from chattune.train.loop import count_steps
from chattune.train.memory import check_memory
from chattune.train.speed import attention_kernel


@dataclass
class RunResult:
    """What a training run left behind."""

    output_dir: Path
    records: list[dict[str, Any]]
    data: PrepareStats
    compare: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    benchmarks: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None
    exports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return [r["loss"] for r in self.records if "loss" in r][-1]


def load_examples(cfg: TrainConfig, tokenizer: Any,
                  which: str = "train") -> tuple[list[Example], PrepareStats]:
    """The config's train or eval sources -> verified Examples (bad rows as data.on_bad_row
    says)."""
    d = cfg.data
    opts = PrepareOptions(train_on=d.train_on, max_length=cfg.args.max_length,
                          truncation=d.truncation, template_kwargs=cfg.template_kwargs)
    return prepare_sources(d.sources(which), tokenizer, opts, on_bad_row=d.on_bad_row,
                           num_proc=d.num_proc, cache=d.cache)


def require_examples(examples: list[Example], stats: PrepareStats, key: str,
                     cfg: TrainConfig) -> None:
    """A DataError when preparation left nothing to train or evaluate on (the loop would wait
    forever for a first batch), saying where every row went."""
    if examples:
        return
    went = [f"{n} x {reason}"
            for reason, n in {**stats.bad_by_reason, **stats.dropped_by_reason}.items()]
    hint = (f" (truncation: {cfg.data.truncation}, max_length {cfg.args.max_length})"
            if stats.dropped else "")
    raise DataError(key, None, None,
                    f"no examples left after preparation: {stats.rows} rows read, {stats.bad} bad "
                    f"and skipped, {stats.dropped} dropped{hint}"
                    + (f" [{', '.join(went)}]" if went else "")
                    + f"; nothing to {'train' if key == 'data.train' else 'evaluate'} on",
                    reason="no_examples")


def load_train_and_eval(cfg: TrainConfig, tokenizer: Any, console: Console):
    """Training examples, eval examples (from data.eval, a data.test_size hold-out, or None) and
    their stats."""
    examples, stats = load_examples(cfg, tokenizer, "train")
    print_stats(console, stats, "train data", bad="skipped")
    require_examples(examples, stats, "data.train", cfg)
    eval_examples = None
    if cfg.data.eval is not None:
        eval_examples, eval_stats = load_examples(cfg, tokenizer, "eval")
        print_stats(console, eval_stats, "eval data", bad="skipped")
        require_examples(eval_examples, eval_stats, "data.eval", cfg)
    elif cfg.data.test_size is not None:
        examples, eval_examples = split_examples(examples, cfg.data.test_size, cfg.args.seed)
        console.print(f"eval: {len(eval_examples)} examples held out of train (data.test_size "
                      f"{cfg.data.test_size})")
    return examples, eval_examples, stats


def _print_compare(console: Console, data: CompareSet, before, after, show: int) -> None:
    table = Table(title="before / after on held-out questions")
    for col in ("", "base", "tuned"):
        table.add_column(col)
    table.add_row("format compliance (#### n)", f"{before[1].compliance:.1%}",
                  f"{after[1].compliance:.1%}")
    table.add_row("exact match", f"{before[1].accuracy:.1%}", f"{after[1].accuracy:.1%}")
    console.print(table)
    for i in range(min(show, len(data.questions))):
        side = Table(title=f"question {i + 1}: {data.questions[i][:150]}", show_lines=True)
        side.add_column("base", ratio=1)
        side.add_column("tuned", ratio=1)
        side.add_row(before[0][i], after[0][i])
        console.print(side)


def _answers(model: Any, tokenizer: Any, data: CompareSet, cfg: TrainConfig, console: Console,
             timings: dict[str, float], which: str) -> Any:
    """The base or tuned model's answers to the comparison questions, scored, with their time in
    `timings`."""
    t = time.perf_counter()
    console.print(f"generating {len(data.prompts)} answers with the {which} model ...")
    with counting_progress(console, len(data.prompts), f"{which} answers") as advance:
        scored = answer_and_score(model, tokenizer, data, cfg.compare, None, advance,
                                  cfg.template_kwargs)
    timings[f"generate_{which}_s"] = time.perf_counter() - t
    return scored


def _judge_answers(judge: OpenedJudge, out: Path, data: CompareSet, base: list[str],
                   tuned: list[str], console: Console, timings: dict[str, float]) -> dict[str, Any]:
    """The judge's verdicts on base vs tuned (judge.json, judge.jsonl; the summary also in
    compare.json)."""
    t = time.perf_counter()
    console.print(f"judging {len(base)} base/tuned pairs in both orders with {judge.name} ...")
    items = judge_pairs(judge.get(), data.questions, base, tuned, rubric=judge.rubric,
                        references=data.references)
    summary = summarise(items, "base", "tuned", judge.name, judge.rubric)
    write_judgement(out, items, summary, replace=True)
    add_to_compare_json(out, summary.as_dict(), key="judge")
    console.print(summary.sentence())
    timings["judge_s"] = time.perf_counter() - t
    return summary.as_dict()


def _resolved_eval_tasks(cfg: TrainConfig) -> list[Any]:
    return resolve_tasks([t if isinstance(t, str) else t.model_dump() for t in cfg.eval_tasks])


def _benchmarks(model: Any, tokenizer: Any, tasks: list[Any], cfg: TrainConfig, console: Console,
                timings: dict[str, float], which: str) -> BenchmarkResults:
    """The base or tuned model's scores on cfg.eval_tasks, with their time in `timings`."""
    t = time.perf_counter()
    names = [t.get("task", "?") if isinstance(t, dict) else t for t in tasks]
    console.print(f"benchmarks with the {which} model: {', '.join(names)} ...")
    results = run_benchmarks(model, tokenizer, tasks, limit=cfg.eval_tasks_limit)
    timings[f"benchmarks_{which}_s"] = time.perf_counter() - t
    return results


def batching_features(cfg: TrainConfig, device: torch.device, speed: str | None = None) -> str:
    """How micro-batches are laid out and what speed features run, in the run's first lines."""
    parts = ["packed rows" if cfg.args.packing else "one row per example"]
    padded = ("padding-free (one sequence per micro-batch)" if cfg.args.padding_free
              else "padded to the longest row")
    parts.append(padded)
    if cfg.args.max_tokens_per_batch:
        parts.append(f"up to {cfg.args.max_tokens_per_batch} tokens per micro-batch")
    if cfg.checkpointing:
        parts.append("gradient checkpointing")
    # as load_base chose it
    kernel = attention_kernel(cfg.attn_implementation, cfg.args.padding_free, device)
    if kernel:
        chosen = ("" if cfg.attn_implementation
                  else " (variable-length, for padding-free; attn_implementation sets it)")
        parts.append(f"attention: {kernel}{chosen}")
    if cfg.args.compile:
        parts.append("compile: decoder layers")
    if speed:
        parts.append(speed)
    return ", ".join(parts)


@dataclass
class _Opened:
    """What a run checked and loaded before training: the extras it will run (benchmark tasks,
    judge, exports, comparison questions), the tokenizer and data, the base model."""

    tasks: list[Any]
    judge: OpenedJudge | None
    exports: list[Any]
    compare_set: CompareSet | None
    model_path: Path
    tokenizer: Any
    new_tokens: list[int]
    info: RunInfo
    examples: list[Example]
    eval_examples: list[Example] | None
    stats: PrepareStats
    model: Any = None
    stops: list[int] = field(default_factory=list)


def _opened(cfg: TrainConfig, run: Run) -> _Opened:
    """Checks that read and write nothing heavy first (tasks, judge URL, exports, comparison data),
    then the tokenizer, template and every data row, and only then the model."""
    main = run.dist.is_main
    tasks = _resolved_eval_tasks(cfg) if main else []
    judge = (OpenedJudge(cfg.compare.judge, run.device)
             if cfg.compare and cfg.compare.judge and main else None)
    exports = check_exports(cfg.export.gguf) if cfg.export and main else []  # llama.cpp at hand
    compare_set = (load_compare_set(cfg.compare, cfg.data.system_prompt)
                   if cfg.compare and main else None)
    model_path = resolve_model_path(cfg.model)
    tokenizer, new_tokens, applied = load_tokenizer_with_template(cfg, model_path)
    info = run_info(cfg, model_path, template_description(cfg, applied, new_tokens), run.device,
                    run.precision, run.dist.world)
    for line in info.lines():
        run.console.print(line, highlight=False, markup=False)
    # the main process fills the prepared-data cache; the others then reuse it
    with run.dist.main_first():
        examples, eval_examples, stats = load_train_and_eval(cfg, tokenizer, run.console)
    opened = _Opened(tasks, judge, exports, compare_set, model_path, tokenizer, new_tokens, info,
                     examples, eval_examples, stats)
    opened.model = load_base_model(cfg, model_path, run.device, run.precision, tokenizer, applied)
    opened.stops = stop_token_ids(tokenizer)
    return opened


def _adapted(cfg: TrainConfig, run: Run, o: _Opened) -> Any:
    """The model to train: LoRA applied (for lora/qlora), a resumed checkpoint's weights loaded."""
    model = (apply_lora(o.model, cfg.lora, o.new_tokens)
             if cfg.finetuning in ("lora", "qlora") else o.model)
    if run.resumed:
        try:
            if not run.resumed.sharded:  # a sharded checkpoint's weights are loaded into the shards
                load_trained_weights(model, run.resumed.path)
        except ModelError as e:
            raise TrainingError(f"resume: {e}; the checkpoint is damaged: resume from another "
                                "one") from None
        run.console.print(f"resuming from {run.resumed.path} (step {run.resumed.step})")
    return model


def _announce(cfg: TrainConfig, run: Run, model: Any, total_steps: int,
              eval_examples: list[Example] | None) -> None:
    """The training plan's lines: parameters, steps, batch, layout and speed features, memory across
    processes."""
    console, dist, batch = run.console, run.dist, cfg.args.per_device_train_batch_size
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(f"training: {trainable:,} trainable parameters, {total_steps} steps, global "
                  f"batch {batch * cfg.args.gradient_accumulation_steps * dist.world} = {batch} "
                  f"per device x {cfg.args.gradient_accumulation_steps} accumulation x "
                  f"{dist.world} process(es)")
    speed = getattr(base_model(model), "chattune_speed", None)
    console.print(f"batching: {batching_features(cfg, run.device, speed)}")
    if dist.sharded or dist.world > 1:
        console.print(check_memory(model, cfg, dist, run.precision, run.device))
    if dist.sharded and cfg.eval_generations and eval_examples:
        console.print("eval answers during training: off under strategy fsdp (generating would "
                      "need every process); eval loss is computed, and the compare answers come "
                      "from the saved model")


def _trained(cfg: TrainConfig, run: Run, o: _Opened, model: Any,
             total_steps: int) -> tuple[list[dict], bool]:
    """Train, from here on keeping what the run writes (config.yaml, run.json, metrics,
    checkpoints). A run that would write no checkpoint checkpoints its last step, so that a failed
    final save loses nothing: returns the records and whether that insurance was taken."""
    # an earlier run's outputs go (overwrite_output_dir); from here on this run's are kept
    run.begin()
    if run.dist.is_main:
        (run.out / "config.yaml").write_text(yaml.safe_dump(cfg.as_written(), sort_keys=False),
                                             encoding="utf-8")
        o.info.write(run.out)
    args = cfg.train_args()  # what the loop reads
    insure = not cfg.args.save_steps or cfg.args.save_steps >= total_steps
    if insure:
        args = args.model_copy(update={"save_steps": total_steps})
    # generating under FSDP would need every process: answers come after training
    prompts = None if run.dist.sharded else eval_prompts(o.eval_examples, cfg.eval_generations)
    records = train_with_outputs(model, o.tokenizer, o.examples, args, total_steps=total_steps,
                                 device=run.device, dtype=run.precision.compute, stops=o.stops,
                                 console=run.console, eval_examples=o.eval_examples,
                                 resumed=run.resumed, dist=run.dist, eval_prompts=prompts,
                                 hparams=cfg.as_written(), save_last=insure)
    return records, insure


def _benchmarks_after(cfg: TrainConfig, run: Run, o: _Opened, model: Any,
                      base_scores: BenchmarkResults, timings: dict[str, float]) -> dict[str, Any]:
    """The tuned model's benchmark scores beside the base's (compare.json, the console)."""
    tuned = _benchmarks(model, o.tokenizer, o.tasks, cfg, run.console, timings, "tuned")
    compared = compare_benchmarks(base_scores, tuned)
    add_to_compare_json(run.out, compared)
    run.console.print(comparison_table(compared))
    for fall in compared["falls"]:
        run.console.print(f"[bold yellow]{fall}[/bold yellow] (more than two standard errors)")
    return compared


def _merged(cfg: TrainConfig, run: Run, o: _Opened, final_dir: Path, card: Any) -> None:
    """merged/: from the saved adapter into the unquantised base, in fp32 (what `chattune merge`
    does), saved in the dtype the base was trained in unless merge_dtype says otherwise: a bf16 base
    gives a bf16 model."""
    merged, _, diff = merge_saved_adapter(str(o.model_path), final_dir, device=run.device,
                                          save_dtype=dtype_named(cfg.merge_dtype)
                                          or run.precision.base,
                                          trust_remote_code=cfg.trust_remote_code)
    save_pretrained_atomic(merged, o.tokenizer, run.out / "merged", o.stops)
    dtype = str(merged.dtype).removeprefix("torch.")
    card.merged = f"in fp32, max logit difference vs base+adapter {diff:.1e}; saved in {dtype}"
    run.console.print(f"merged model saved to {run.out / 'merged'} ({dtype}; max logit difference "
                      f"vs base+adapter {diff:.1e}, merged in fp32)")


def run_training(cfg: TrainConfig, console: Console | None = None, resume: str | None = None, *,
                 allow_config_changes: bool = False) -> RunResult:
    """Train as `cfg` says, save adapter/model, metrics and plot, and compare before/after if
    configured.

    `resume`: "latest" or a checkpoint directory; training continues from it exactly, under the
    config that wrote it unless `allow_config_changes`. Without it, another run's checkpoints or
    outputs in output_dir are an error unless cfg.overwrite_output_dir (then they are removed when
    training starts)."""
    # one process speaks and writes; the others train their share and stop after the last step
    with open_run(RunSettings.from_config(cfg), resume, console) as run:
        run.check_folder(cfg.as_written(), allow_changes=allow_config_changes)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        o = _opened(cfg, run)
        timings["load_and_prepare_s"] = time.perf_counter() - t0
        before = _answers(o.model, o.tokenizer, o.compare_set, cfg, run.console, timings, "base") \
            if o.compare_set is not None else None
        base_scores = (_benchmarks(o.model, o.tokenizer, o.tasks, cfg, run.console, timings, "base")
                       if o.tasks else None)
        model = _adapted(cfg, run, o)
        total_steps = count_steps(o.examples, cfg.train_args(), run.dist.world)
        _announce(cfg, run, model, total_steps, o.eval_examples)
        t = time.perf_counter()
        records, insured = _trained(cfg, run, o, model, total_steps)
        timings["train_s"] = time.perf_counter() - t
        # every process takes part; the main gets it
        full = full_state_dict(model) if run.dist.sharded else None
        if not run.dist.is_main:
            return RunResult(run.out, records, o.stats, timings=timings)
        final_dir = run.out / ("adapter" if cfg.finetuning in ("lora", "qlora") else "model")
        save_final(model, o.tokenizer, final_dir, o.stops, total_steps, insured=insured,
                   state_dict=full)
        del full  # the full copy of sharded weights
        o.model = None  # the base before LoRA: the trained model holds what is needed of it
        return _after_training(cfg, run, o, model, records, before, base_scores, final_dir, timings,
                               t0)


def _after_training(cfg: TrainConfig, run: Run, o: _Opened, model: Any,
                    records: list[dict[str, Any]],
                    before: Any, base_scores: BenchmarkResults | None, final_dir: Path,
                    timings: dict[str, float], t0: float) -> RunResult:
    """The main process after the final save: model cards, the curve, before/after answers and the
    judge, benchmarks, the merged model, exports, timings and the report."""
    out, console, adapters = run.out, run.console, final_dir.name == "adapter"
    card = run_facts(cfg, o.stats, len(o.eval_examples) if o.eval_examples else None, run.precision,
                     records)
    # written again below, with the evaluation and the merged model
    write_run_cards(out, card, o.model_path)
    # the trained model from what was saved: the sharded one answers only with every process
    if run.dist.sharded:
        model, _ = load_for_inference(str(o.model_path if adapters else final_dir),
                                      final_dir if adapters else None, device=run.device,
                                      dtype=run.precision.base)
    plot_loss(records, out / "loss.png")
    console.print(f"saved {final_dir} and {out / 'loss.png'}")
    result = RunResult(out, records, o.stats, timings=timings)
    if o.compare_set is not None:
        after = _answers(model, o.tokenizer, o.compare_set, cfg, console, timings, "tuned")
        result.compare = write_comparison(out, o.compare_set, before, after)
        _print_compare(console, o.compare_set, before, after, cfg.compare.show)
        if o.judge is not None:
            result.judge = _judge_answers(o.judge, out, o.compare_set, before[0], after[0], console,
                                          timings)
    if base_scores is not None:
        result.benchmarks = _benchmarks_after(cfg, run, o, model, base_scores, timings)
    model = None  # the merge and the exports load the saved model afresh
    if adapters and cfg.merge:
        _merged(cfg, run, o, final_dir, card)
    write_run_cards(out, card, o.model_path)
    if o.exports:
        t = time.perf_counter()
        # loads the saved model afresh, in fp32
        result.exports = export_run(out, o.exports, console.print)
        timings["export_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    summary = {k: v for k, v in o.stats.as_dict().items() if k not in ("problems", "reused")}
    console.print(f"report: {write_report(out, data=summary, timings=timings)}")
    return result
