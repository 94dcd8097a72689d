"""The model card (README.md) of a saved adapter, merged model or fully fine-tuned model, in Hugging
Face's form: YAML metadata (base model, library, tags, licence), then what the model is, how it was
trained, on what, how it scored, and how to load it. Written at save and rewritten once the run's
evaluation is done."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from chattune.config import DEFAULT_MODEL, TrainArgs, TrainConfig
from chattune.files import user_umask
from chattune.model.device import Precision
from chattune.model.load import model_id
from chattune.prepare.rows import PrepareStats

# licences of bases whose card chattune cannot read offline (the default comes from a GGUF without
# its card)
KNOWN_LICENCES = {DEFAULT_MODEL: "apache-2.0"}
# the training sections between these markers are carried from an adapter's card to a merge of it
TRAINING_START, TRAINING_END = "<!-- chattune: training -->", "<!-- chattune: end of training -->"


@dataclass
class CardFacts:
    """What a card says about a run; `base_model` is the id the user gave (never a cache path)."""

    base_model: str | None
    finetuning: str  # lora, qlora, full (or another peft method's name)
    settings: dict[str, Any]  # the key hyperparameters, in the order shown
    config: dict[str, Any]  # the run's settings as set, shown as a YAML block
    data: list[str]  # one line per dataset: file names and example counts
    template: str
    records: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl's records
    config_name: str = "chattune config"
    precision: str | None = None
    merged: str | None = None  # the merged model's dtype and merge check, once merged


def base_licence(base_model: str | None, base_dir: Path | None = None) -> str | None:
    """The base's licence id: a known one, else its local card's `license:`; None when unknown."""
    if base_model in KNOWN_LICENCES:
        return KNOWN_LICENCES[base_model]
    card = (base_dir or Path(base_model or "")) / "README.md"
    try:
        text = card.read_text(encoding="utf-8") if base_model and card.is_file() else ""
        meta = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else None
    except (OSError, yaml.YAMLError, IndexError):
        return None
    licence = meta.get("license") if isinstance(meta, dict) else None
    return str(licence) if licence else None


def final_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged train loss and eval loss, and the steps run."""
    out: dict[str, float] = {}
    for key, name in (("loss", "train loss"), ("eval_loss", "eval loss")):
        last = [r[key] for r in records if isinstance(r.get(key), (int, float))]
        if last:
            out[name] = round(float(last[-1]), 4)
    steps = [r["step"] for r in records if isinstance(r.get("step"), int)]
    if steps:
        out["steps"] = max(steps)
    return out


def _front_matter(kind: str, facts: CardFacts, licence: str | None) -> list[str]:
    meta: dict[str, Any] = {}
    if facts.base_model:
        meta["base_model"] = facts.base_model
    meta["library_name"] = "peft" if kind == "adapter" else "transformers"
    if licence:
        meta["license"] = licence
    meta["pipeline_tag"] = "text-generation"
    tags = ["chattune", "sft", facts.finetuning] + (["lora"] if facts.finetuning == "qlora" else [])
    meta["tags"] = list(dict.fromkeys(tags + (["merged"] if kind == "merged" else [])))
    return ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---"]


def _method(finetuning: str) -> str:
    return {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}.get(finetuning,
                                                                              finetuning)


def _what(kind: str, facts: CardFacts) -> str:
    base = f"`{facts.base_model}`" if facts.base_model else "a base model"
    if kind == "adapter":
        return (f"A {_method(facts.finetuning)} adapter for {base}, trained with supervised "
                "fine-tuning on chat data by chattune. It holds only the adapter weights: load it "
                "on top of the base model.")
    if kind == "merged":
        return (f"{base} with a {_method(facts.finetuning)} adapter merged into its weights "
                "(supervised fine-tuning by chattune): a plain transformers model, loaded without "
                "peft.")
    return f"{base}, fully fine-tuned with supervised fine-tuning on chat data by chattune."


def _training(facts: CardFacts) -> list[str]:
    lines = [TRAINING_START, "## Training", "", f"- base model: `{facts.base_model or 'unknown'}`",
             f"- method: {_method(facts.finetuning)}",
             *(f"  - {k}: {v}" for k, v in facts.settings.items())]
    if facts.precision:
        lines.append(f"- precision: {facts.precision}")
    lines.append(f"- chat template: {facts.template}")
    if facts.merged:
        lines.append(f"- merged: {facts.merged}")
    lines += ["", "### Data", "", *(f"- {d}" for d in facts.data or ["(not recorded)"])]
    metrics = final_metrics(facts.records)
    if metrics:
        lines += ["", "### Results", "", "| metric | value |", "|---|---|",
                  *(f"| {k} | {v} |" for k, v in metrics.items())]
    return lines


def _evaluation(compare: dict[str, Any] | None) -> list[str]:
    """compare.json as tables: held-out answers scored, benchmarks with standard errors, the judge's
    verdict."""
    if not compare:
        return []
    lines = ["", "## Evaluation", ""]
    if "base" in compare and "tuned" in compare:
        base, tuned = compare["base"], compare["tuned"]
        lines += ["Held-out questions answered by the base and the tuned model "
                  f"({tuned.get('n', '?')} questions):",
                  "", "| | base | tuned |", "|---|---|---|"]
        for key in ("exact_match", "format_compliance"):
            if key in base and key in tuned:
                lines.append(f"| {key.replace('_', ' ')} | {base[key]:.1%} | {tuned[key]:.1%} |")
        lines.append("")
    tasks = (compare.get("benchmarks") or {}).get("tasks") or {}
    if tasks:
        lines += ["Benchmarks (lm-evaluation-harness; points, ± standard error):", "",
                  "| task | metric | base | tuned | change |", "|---|---|---|---|---|"]
        for task, metrics in tasks.items():
            for metric, row in metrics.items():
                lines.append(f"| {task} | {metric} | {_points(row, 'base')} | "
                             f"{_points(row, 'tuned')} | {100 * row['change']:+.1f} |")
        lines.append("")
    judge = compare.get("judge")
    if isinstance(judge, dict) and "n" in judge:
        lines += [f"Judged by {judge.get('judge', 'a judge model')} (both orders): "
                  f"{judge.get('wins')} wins, {judge.get('ties')} ties, {judge.get('losses')} "
                  f"losses of {judge['n']}; win rate {judge.get('win_rate', 0):.1%}.", ""]
    return lines[:-1] if lines[-1] == "" else lines


def _points(row: dict[str, Any], which: str) -> str:
    return f"{100 * row[which]:.1f} ± {100 * (row.get(which + '_stderr') or 0):.1f}"


def _usage(kind: str, facts: CardFacts) -> list[str]:
    here = "path/to/this/folder"  # or the hub repository it is uploaded to
    chat = ['messages = [{"role": "user", "content": "Hello!"}]',
            'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, '
            'return_dict=True, return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=256)",
            'print(tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], '
            'skip_special_tokens=True))']
    if kind == "adapter":
        code = ["from peft import AutoPeftModelForCausalLM",
                "from transformers import AutoTokenizer", "",
                f'model = AutoPeftModelForCausalLM.from_pretrained("{here}")  # loads the base it '
                'names too',
                f'tokenizer = AutoTokenizer.from_pretrained("{here}")  # carries the chat template '
                'trained with']
        cli = f"chattune chat {facts.base_model or 'BASE'} --adapter {here}"
    else:
        code = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                f'model = AutoModelForCausalLM.from_pretrained("{here}")',
                f'tokenizer = AutoTokenizer.from_pretrained("{here}")  # carries the chat template '
                'trained with']
        cli = f"chattune chat {here}"
    return ["", "## How to use", "", "```python", *code, *chat, "```", "",
            "Or chat with it from the command line:", "", "```bash", cli, "```"]


def _title(kind: str, facts: CardFacts) -> str:
    method = "full" if kind == "model" else _method(facts.finetuning)
    return (f"# {facts.base_model or 'Model'}: {method} fine-tune"
            + (", merged" if kind == "merged" else ""))


def card_text(kind: str, facts: CardFacts, compare: dict[str, Any] | None = None,
              licence: str | None = None) -> str:
    """The card of an `adapter`, `merged` model or fully fine-tuned `model`."""
    from chattune import __version__

    lines = [*_front_matter(kind, facts, licence), "", _title(kind, facts), "", _what(kind, facts),
             "", *_training(facts), *_evaluation(compare), TRAINING_END, *_usage(kind, facts)]
    lines += ["", f"## {facts.config_name}", "", "```yaml",
              yaml.safe_dump(facts.config, sort_keys=False, allow_unicode=True).strip(), "```"]
    return "\n".join(lines + _licence_and_stamp(facts.base_model, licence, __version__)) + "\n"


def _licence_and_stamp(base_model: str | None, licence: str | None, version: str) -> list[str]:
    terms = (f"`{licence}`, as the base model's," if licence
             else "the base model's licence and terms of use")
    return ["", "## Licence", "",
            f"This model is a derivative of `{base_model or 'its base model'}`: {terms} "
            "apply.", "",
            f"Made with chattune {version} on {datetime.now(timezone.utc).strftime('%Y-%m-%d')}."]


def merged_card_text(base_model: str | None, adapter_dir: Path, merged: str,
                     licence: str | None = None) -> str:
    """The card of `chattune merge`'s output: the adapter's training sections (when chattune wrote
    its card), what the merge did (`merged`: dtype and check), and how to load it."""
    from chattune import __version__

    facts = CardFacts(base_model, "lora", {}, {}, [], "")
    training = training_sections(adapter_dir) or ["## Training", "",
                                                  f"- adapter: `{Path(adapter_dir).name}` "
                                                  "(its card says no more)"]
    lines = [*_front_matter("merged", facts, licence), "",
             f"# {base_model or 'Model'}: fine-tune, merged", "",
             f"`{base_model or 'A base model'}` with the adapter `{Path(adapter_dir).name}` merged "
             "into its weights by chattune: a plain transformers model, loaded without peft.", "",
             TRAINING_START, *training, "", "## Merge", "", merged, TRAINING_END,
             *_usage("merged", facts)]
    return "\n".join(lines + _licence_and_stamp(base_model, licence, __version__)) + "\n"


def write_card(directory: Path, text: str) -> Path:
    """README.md in `directory`, replaced atomically (a crash leaves the earlier card, never half of
    one)."""
    path = Path(directory) / "README.md"
    fd, tmp = tempfile.mkstemp(prefix=".README-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp's 0600 would hide the card from a shared group
        os.chmod(tmp, 0o666 & ~user_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_run_cards(out: Path, facts: CardFacts, base_dir: Path | None = None) -> list[Path]:
    """The card of each of a run's adapter/, merged/ and model/ folders, with compare.json's scores
    when the run made them; `base_dir`: the base's local folder, whose card may name its licence."""
    compare_file = out / "compare.json"
    compare = (json.loads(compare_file.read_text(encoding="utf-8"))
               if compare_file.is_file() else None)
    licence = base_licence(facts.base_model, base_dir)
    return [write_card(out / kind, card_text(kind, facts, compare, licence))
            for kind in ("adapter", "merged", "model") if (out / kind).is_dir()]


def training_sections(adapter_dir: Path) -> list[str]:
    """The training sections of a chattune adapter's card (to carry into a merge of it); [] for
    another card."""
    try:
        text = (Path(adapter_dir) / "README.md").read_text(encoding="utf-8")
    except OSError:
        return []
    if TRAINING_START not in text or TRAINING_END not in text:
        return []
    return text.split(TRAINING_START, 1)[1].split(TRAINING_END, 1)[0].strip("\n").splitlines()


def key_settings(args: TrainArgs, lora: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hyperparameters a reader looks for first: LoRA's, then the optimisation's and the data's
    shape."""
    out: dict[str, Any] = dict(lora or {})
    out["learning rate"] = args.learning_rate
    out["schedule"] = f"{args.lr_scheduler_type}, warmup {args.warmup_ratio}"
    out["batch"] = (f"{args.per_device_train_batch_size} per device x "
                    f"{args.gradient_accumulation_steps} accumulation")
    out["length"] = f"max_length {args.max_length}" + (", packed" if args.packing else "")
    out["duration"] = (f"max_steps {args.max_steps}" if args.max_steps > 0
                       else f"{args.num_train_epochs} epochs")
    out["seed"] = args.seed
    return out


def template_said(template: str | None) -> str:
    """How the chat template was chosen; it ships in the saved tokenizer files either way."""
    chosen = ("the base tokenizer's own (ChatML where it had none)" if not template else
              "a Jinja template of the run's config" if "{" in template else f"`{template}`")
    return f"{chosen}; saved with the tokenizer, so apply_chat_template renders as in training"


def _file_names(paths: list[str]) -> str:
    """Local files by name (the card travels; the machine's folders do not), hub datasets by id."""
    return ", ".join(f"`{Path(p).name if Path(p).exists() else p}`" for p in paths)


def run_facts(cfg: TrainConfig, stats: PrepareStats, eval_examples: int | None,
              precision: Precision, records: list[dict[str, Any]] | None = None) -> CardFacts:
    """A `chattune train` run's card facts; `eval_examples`: how many examples its eval loss used
    (None: none)."""
    lora = None
    if cfg.finetuning in ("lora", "qlora"):
        lora = {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout,
                "target_modules": cfg.lora.target_modules}
    data = [f"train: {_file_names([s.path for s in cfg.data.sources('train')])}: {stats.rows} rows "
            f"-> {stats.examples} examples ({stats.bad} bad rows skipped, {stats.dropped} dropped)"]
    if eval_examples is not None:
        where = (_file_names([s.path for s in cfg.data.sources("eval")])
                 if cfg.data.eval is not None
                 else f"held out of train (data.test_size {cfg.data.test_size})")
        data.append(f"eval: {where}: {eval_examples} examples")
    weights = ("4-bit NF4" if cfg.finetuning == "qlora"
               else str(precision.base).removeprefix("torch."))
    config = {"model": cfg.model, **cfg.as_written(mode="json", exclude_unset=True)}
    return CardFacts(model_id(cfg.model), cfg.finetuning, key_settings(cfg.args, lora), config,
                     data, template_said(cfg.template), list(records or []),
                     precision=f"{precision.name} compute, base weights {weights}")


def peft_method(model: Any) -> tuple[str, dict[str, Any] | None]:
    """(method, LoRA's settings) of a model: full without peft, lora or qlora (a 4-bit base) with
    it."""
    from chattune.model.load import is_quantized
    from chattune.model.lora import base_model

    config = (getattr(model, "peft_config", None) or {}).get("default")
    if config is None:
        return "full", None
    if not hasattr(config, "lora_alpha"):
        return str(getattr(config, "peft_type", "peft")).lower().removeprefix("pefttype."), None
    targets = config.target_modules
    lora = {"r": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
            "target_modules": sorted(targets) if isinstance(targets, (set, list)) else targets}
    return ("qlora" if is_quantized(base_model(model)) else "lora"), lora


def trainer_facts(model: Any, args: TrainArgs, settings: dict[str, Any], data: list[str],
                  template: str | None, records: list[dict[str, Any]]) -> CardFacts:
    """SFTTrainer's card facts: `settings` are the SFTConfig values the script set, `data` one line
    per dataset."""
    from chattune.model.lora import base_model

    name = getattr(base_model(model), "name_or_path", "") or None
    method, lora = peft_method(model)
    # YAML-safe values
    config = json.loads(json.dumps({"output_dir": args.output_dir, **settings}, default=str))
    chosen = f"from `{Path(template).name}` (chat_template_path)" if template else None
    return CardFacts(model_id(name) if name else None, method, key_settings(args, lora), config,
                     data, template_said(None) if chosen is None
                     else f"{chosen}; saved with the tokenizer", list(records),
                     config_name="SFTConfig")
