"""transformers' TrainerCallbacks on chattune's loop: its hooks become the callbacks' events, with a
live TrainerState and a TrainerControl whose should_training_stop ends the run
(EarlyStoppingCallback works)."""

from __future__ import annotations

from typing import Any

# chattune's record keys under TRL's names
TRL_KEYS = {"tokens": "num_tokens"}


def trl_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A logged record as TRL logs it: tokens -> num_tokens, eval[_<set>]_accuracy ->
    ..._mean_token_accuracy."""
    out = {}
    for key, value in rec.items():
        if key == "total_steps":
            continue
        if (key.startswith("eval") and key.endswith("_accuracy")
                and not key.endswith("mean_token_accuracy")):
            key = key.removesuffix("_accuracy") + "_mean_token_accuracy"
        out[TRL_KEYS.get(key, key)] = value
    return out


def is_eval_record(rec: dict[str, Any]) -> bool:
    return any(k.startswith("eval_") for k in rec)


class CallbackBridge:
    """Runs `callbacks` (TrainerCallback instances or classes) at the loop's events and keeps
    `state` current."""

    def __init__(self, callbacks: list[Any], args: Any, state: Any, trainer: Any):
        self.callbacks = [cb() if isinstance(cb, type) else cb for cb in callbacks]
        self.args, self.state, self.trainer = args, state, trainer
        from transformers import TrainerControl

        self.control = TrainerControl()

    def event(self, name: str, **kwargs: Any) -> Any:
        """Call `name` on every callback, as transformers' CallbackHandler does; a callback may
        return a new TrainerControl."""
        for cb in self.callbacks:
            result = getattr(cb, name)(self.args, self.state, self.control,
                                       model=self.trainer.model,
                                       processing_class=self.trainer.processing_class,
                                       optimizer=None, lr_scheduler=None, train_dataloader=None,
                                       eval_dataloader=None, **kwargs)
            if result is not None:
                self.control = result
        return self.control

    def on_record(self, rec: dict[str, Any]) -> None:
        """A logged record: into log_history, then on_evaluate (eval records) or on_log."""
        logs = trl_record(rec)
        self.state.log_history.append(logs)
        if is_eval_record(logs):
            metrics = {k: v for k, v in logs.items() if k != "step"}
            self.event("on_evaluate", metrics=metrics)
            self._best(metrics)
        elif "generations" not in logs:
            self.event("on_log", logs={k: v for k, v in logs.items() if k != "step"})

    def _best(self, metrics: dict[str, float]) -> None:
        """state.best_metric by args.metric_for_best_model, as Trainer keeps it after each
        evaluation."""
        name = self.args.metric_for_best_model
        if not name:
            return
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            return
        greater = self.args.greater_is_better
        if greater is None:
            greater = not key.endswith("loss")
        best = self.state.best_metric
        if best is None or (metrics[key] > best if greater else metrics[key] < best):
            self.state.best_metric = metrics[key]
            self.state.best_global_step = self.state.global_step

    def on_step(self, step: int, epoch: float) -> bool:
        """After each optimizer step: state advanced, on_step_end; True when a callback asked to
        stop."""
        self.state.global_step, self.state.epoch = step, epoch
        self.event("on_step_end")
        if self.control.should_training_stop:
            return True
        if step < self.state.max_steps:
            self.event("on_step_begin")
        return False
