"""SFTTrainer's evaluate() and predict(), and the eval metrics its training runs log, as
transformers.Trainer reports them (compute_metrics and preprocess_logits_for_metrics included)."""

from __future__ import annotations

from typing import Any

from chattune.errors import ConfigError


def _reported(metrics: dict[str, float], prefix: str,
              ignore_keys: list[str] | None) -> dict[str, float]:
    """Metrics as transformers reports them: TRL's names under `prefix` (eval_loss -> test_loss for
    predict), without `ignore_keys`."""
    from chattune.compat.trl.callbacks import trl_record

    return {prefix + k.removeprefix("eval"): v for k, v in trl_record(metrics).items()
            if k not in (ignore_keys or [])}


class EvalMixin:
    """evaluate, predict and the metrics of an eval set for SFTTrainer (which provides args, cfg,
    model, tokenizer, state, callbacks, compute_metrics, the prepared eval sets and the device)."""

    def _eval_fn(self, device: Any, dtype: Any) -> Any:
        """One eval set's metrics: loss, perplexity and token accuracy, plus compute_metrics' (on
        the logits and labels, as transformers.Trainer gives them) under eval_[<set>_]."""
        from chattune.eval.loss import evaluate_loss, named_metrics, predict_logits

        def evaluate(name: str, examples: Any) -> dict[str, float]:
            batch, pad = self.cfg.per_device_eval_batch_size, self.tokenizer.pad_token_id
            # no logits needed: the loss in chunks, never the whole vocabulary
            if self.compute_metrics is None:
                return named_metrics(evaluate_loss(self.model, examples, batch, pad, device, dtype),
                                     name)
            return named_metrics(self._metrics_of(*predict_logits(
                self.model, examples, batch, pad, device, dtype)),
                                 name)

        return evaluate

    def _metrics_of(self, logits: Any, labels: Any) -> dict[str, float]:
        """Loss, perplexity and token accuracy of predicted logits, with compute_metrics' (as
        eval_<name>)."""
        from chattune.eval.loss import metrics_from_logits

        metrics = metrics_from_logits(logits, labels)
        if self.compute_metrics is not None:
            from transformers import EvalPrediction

            if self.preprocess_logits_for_metrics is not None:
                import torch

                logits = self.preprocess_logits_for_metrics(torch.from_numpy(logits),
                                                            torch.from_numpy(labels)).numpy()
            extra = self.compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)) or {}
            metrics.update({k if k.startswith("eval_") else f"eval_{k}": v
                            for k, v in extra.items()})
        return metrics

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Eval loss, perplexity and token accuracy (and compute_metrics'), as
        transformers.Trainer.evaluate: on the trainer's eval set(s) (each named set's metrics
        prefixed with its name), on `eval_dataset` (a dataset, a dict of them, or the name of one of
        the trainer's), under `metric_key_prefix`."""
        if eval_dataset is None:
            sets = self._prepare()[1]
        elif isinstance(eval_dataset, str):
            sets = {eval_dataset: self._prepare()[1].get(eval_dataset)}
            if sets[eval_dataset] is None:
                raise KeyError(f"evaluate: no eval dataset named {eval_dataset!r}; the trainer has "
                               f"{', '.join(self._prepare()[1]) or 'none'}")
        else:
            given = dict(eval_dataset) if isinstance(eval_dataset, dict) else {"": eval_dataset}
            sets = {name: self._examples_of(self._items(data, "eval_dataset"))
                    for name, data in given.items()}
        if not any(sets.values()):
            raise ConfigError(["evaluate() needs an eval_dataset"])
        device, dtype = self._device_and_dtype()
        self._to_device(device)
        evaluate = self._eval_fn(device, dtype)
        out: dict[str, float] = {}
        for name, examples in sets.items():
            out.update(_reported(evaluate(name, examples), metric_key_prefix, ignore_keys))
        self.state.log_history.append({**out, "step": self.state.global_step})
        from chattune.compat.trl.callbacks import CallbackBridge

        CallbackBridge(self.callbacks, self.args, self.state, self).event("on_evaluate",
                                                                          metrics=out)
        return out

    def predict(self, test_dataset: Any, ignore_keys: list[str] | None = None,
                metric_key_prefix: str = "test") -> Any:
        """transformers' PredictionOutput: the logits and labels of every row (padded), and the
        metrics computed from them (one forward pass; on_predict runs, nothing is logged, as in
        transformers.Trainer)."""
        from transformers.trainer_utils import PredictionOutput

        from chattune.compat.trl.callbacks import CallbackBridge
        from chattune.eval.loss import predict_logits

        examples = self._examples_of(self._items(test_dataset, "test_dataset"))
        device, dtype = self._device_and_dtype()
        self._to_device(device)
        logits, labels = predict_logits(self.model, examples, self.cfg.per_device_eval_batch_size,
                                        self.tokenizer.pad_token_id, device, dtype)
        metrics = _reported(self._metrics_of(logits, labels), metric_key_prefix,
                            ignore_keys) if examples else {}
        CallbackBridge(self.callbacks, self.args, self.state, self).event(
            "on_predict", metrics=metrics)
        return PredictionOutput(predictions=logits, label_ids=labels, metrics=metrics)
