"""SFTTrainer's model cards, report and hub upload, as transformers.Trainer offers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chattune.batching.collate import Example


class HubMixin:
    """create_model_card and push_to_hub for SFTTrainer (which provides args, cfg, model, save_model
    and the logged records), and the card and report its runs write."""

    def _card(self) -> str:
        """The saved folder's model card (README.md): base, method, data, template, settings, final
        losses."""
        from chattune.outputs.model_card import base_licence, card_text, trainer_facts

        data = [f"train: the train_dataset given to SFTTrainer: {len(self._train_items)} rows -> "
                f"{len(self.train_examples)} examples"]
        data += [f"eval{f' {name!r}' if name else ''}: {len(items)} rows"
                 for name, items in self._eval_items.items()]
        facts = trainer_facts(self.model, self.cfg, self.args.values, data,
                              self.args.chat_template_path, self.records)
        return card_text("model" if facts.finetuning == "full" else "adapter", facts,
                         licence=base_licence(facts.base_model))

    def _report(self, run: Any, examples: list[Example], evals: dict[str, list[Example]],
                seconds: float, hparams: dict[str, Any]) -> None:
        """run.json, report.html and its curves, as `chattune train` writes them, and the libraries'
        messages."""
        from chattune.model.lora import base_model
        from chattune.outputs.report import write_report
        from chattune.outputs.run_info import RunInfo

        name = str(getattr(getattr(base_model(self.model), "config", None), "_name_or_path", "")
                   or "")
        method = self._finetuning
        # LoRA, or another peft method (IA3, prompt tuning, ...) named by its type
        if method != "full":
            peft = next(iter(self.model.peft_config.values()))
            kind = str(getattr(peft.peft_type, "value", peft.peft_type)).lower()
            method = (f"{method} (r {peft.r}, alpha {peft.lora_alpha})"
                      if hasattr(peft, "lora_alpha") else kind)
        weights = str(next(base_model(self.model).parameters()).dtype).removeprefix("torch.")
        template = self.args.chat_template_path or "the tokenizer's own"
        RunInfo(model=name or "a model built in memory", method=method, template=template,
                data=[f"the train_dataset given to SFTTrainer ({len(self._train_items)} rows)"],
                eval_data=[f"{key or 'eval_dataset'} ({len(items)} rows)"
                           for key, items in self._eval_items.items()],
                device=str(run.device),
                precision=f"{run.precision.name} compute, weights {weights}").write(run.out)

        data = {"train examples": len(examples),
                "eval examples": sum(len(v) for v in evals.values()),
                "train tokens": sum(len(ex.input_ids) for ex in examples),
                "trained tokens": sum(ex.num_trained for ex in examples)}
        report = write_report(run.out, data=data, timings={"train_s": seconds}, config=hparams)
        run.console.print(f"report: {report}")
        log = self._kept.write(run.out)
        if log:
            run.console.print(self._kept.summary(log), soft_wrap=True)

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None,
                          tags: list[str] | str | None = None,
                          folder: str | Path | None = None) -> Path:
        """README.md (the hub's model card: base model, tags, steps, final loss) in `folder`
        (default output_dir)."""
        from chattune.model.lora import base_model
        from chattune.outputs.hub import write_model_card

        folder = Path(folder or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        logged = self._training_records()
        summary = {"steps": logged[-1]["step"] if logged else None,
                   "final loss": round(logged[-1]["loss"], 4) if logged else None,
                   "dataset": dataset_name}
        # the loaded model's name (a peft model's is its base's); none for a model built in memory
        name = str(getattr(getattr(base_model(self.model), "config", None), "_name_or_path", "")
                   or "") or None
        return write_model_card(folder, model_name or folder.resolve().name, base_model=name,
                                tags=[tags] if isinstance(tags, str) else list(tags or []),
                                summary={k: v for k, v in summary.items() if v is not None})

    def push_to_hub(self, commit_message: str = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, *,
                    tags: list[str] | str | None = None,
                    model_name: str | None = None, dataset_name: str | None = None,
                    **unsupported: Any) -> Any:
        """Save the model with a model card and upload it to args.hub_model_id (default:
        output_dir's name).

        Returns huggingface_hub's CommitInfo. A failed upload raises HubError naming the saved
        directory."""
        from chattune.outputs.hub import push_folder

        if unsupported:
            raise TypeError("push_to_hub: chattune does not support "
                            f"{', '.join(sorted(unsupported))}")
        repo_id = self.args.hub_model_id or model_name or Path(self.cfg.output_dir).resolve().name
        folder = self.save_model(str(Path(self.cfg.output_dir) / "hub"))
        self.create_model_card(model_name=repo_id, dataset_name=dataset_name, tags=tags,
                               folder=folder)
        return push_folder(folder, repo_id, token=token or self.args.hub_token,
                           private=self.args.hub_private_repo, revision=revision,
                           commit_message=commit_message)
