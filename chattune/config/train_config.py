"""TrainConfig: everything `chattune train` needs, composed of the loop's TrainArgs and the model,
data, precision and output sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from chattune.config.base import DEFAULT_MODEL, DEVICE_PATTERN, RESUME_MAY_CHANGE, _Strict
from chattune.config.loop_args import TrainArgs
from chattune.config.sections import (
    CompareConfig,
    DataConfig,
    ExportConfig,
    FsdpSettings,
    LoraSettings,
    OwnTask,
)


class TrainConfig(_Strict):
    """Everything `chattune train` needs: the loop's arguments (`args`) and the model, data,
    precision and outputs. A config file writes the loop's keys at its top level, beside the others;
    `args` gathers them."""

    args: TrainArgs = Field(
        default_factory=TrainArgs,
        description="The loop's arguments (written at the top level of a config file).",
    )
    model: str = Field(DEFAULT_MODEL, description="Hub id, local model directory or .gguf file.")
    template: str | None = Field(
        None,
        description="Built-in template name or a Jinja string; None uses the "
        "tokenizer's own (chatml is set up when it has none).",
    )
    template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Keyword arguments for the chat template, as apply_chat_template passes them "
        "(e.g. {enable_thinking: false} for Qwen3).",
    )
    trust_remote_code: bool = Field(
        False,
        description="Run code shipped with a hub model (off: it is unsafe).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    data: DataConfig
    finetuning: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="LoRA adapters, QLoRA (LoRA on a 4-bit NF4 base through bitsandbytes), or full "
        "fine-tuning.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    compare: CompareConfig | None = Field(
        None, description="Before/after generation comparison.", json_schema_extra=RESUME_MAY_CHANGE
    )
    eval_tasks: list[str | OwnTask] = Field(
        default_factory=list,
        description="Benchmarks scored on the base and the tuned model through "
        "lm-evaluation-harness: shipped offline tasks (gsm8k, ifeval, truthfulqa_mc1, "
        "truthfulqa_mc2), lm-eval task names, task YAML paths, or your own task ({data, prompt, "
        "answer, metric}); side by side with standard errors in compare.json and the report.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    eval_tasks_limit: int | None = Field(
        None,
        gt=0,
        description="Score only the first N items of each of eval_tasks (all of them when unset).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    export: ExportConfig | None = Field(
        None,
        description="GGUF exports after training, verified in llama.cpp.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    strategy: Literal["ddp", "fsdp"] | None = Field(
        None,
        description="With several processes: ddp (a full replica per process) or fsdp (weights, "
        "gradients and optimizer state sharded over the processes, PyTorch FSDP2; also on one "
        "process, for CPU offload). None: ddp.",
    )
    fsdp: FsdpSettings = Field(default_factory=FsdpSettings)

    eval_generations: int = Field(
        3,
        ge=0,
        description="Eval prompts answered (greedy) at each eval, logged.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    liger: bool = Field(
        False,
        description="Liger Kernel's fused RMSNorm, RoPE, SwiGLU and linear cross-entropy "
        "(CUDA GPUs, with chattune[liger]).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] | None = (
        Field(
            None,
            description="Attention kernel (transformers' name). With padding_free, flex_attention "
            "and flash_attention_2 attend within each document only instead of over a dense block "
            "mask. None: sdpa, or for padding_free on a CUDA GPU flash_attention_2 where "
            "flash-attn is installed, else flex_attention.",
            json_schema_extra=RESUME_MAY_CHANGE,
        )
    )
    device: str = Field(
        "auto",
        pattern=DEVICE_PATTERN,
        description="auto (the first GPU, else mps, else the CPU), cpu, cuda, cuda:N or mps.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    bf16: bool | None = Field(
        None,
        description="bf16 compute (a LoRA/QLoRA base is loaded in bf16, full "
        "fine-tuning autocasts fp32 weights); None turns it on where the hardware is fast "
        "at it.",
    )
    fp16: bool = Field(False, description="fp16 compute with loss scaling, for GPUs without bf16.")
    merge: bool = Field(
        True,
        description="Also save a merged model (merged/) after LoRA or QLoRA training; false: "
        "the adapter alone.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    merge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="The dtype merged/ is saved in; auto: the dtype the base was trained in (bf16 "
        "where the run loaded its base in bf16, fp32 elsewhere). The merge and its logit check run "
        "in fp32 either way.",
    )
    overwrite_output_dir: bool = Field(
        False,
        description="Start afresh in an output_dir that holds another run's "
        "checkpoints, removing them (without it, such a run is refused: resume it "
        "or choose another output_dir).",
        json_schema_extra=RESUME_MAY_CHANGE,
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_loop_keys(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        loop = {k: v for k, v in raw.items() if k in TrainArgs.model_fields}
        if not loop:
            return raw
        rest = {k: v for k, v in raw.items() if k not in loop}
        given = rest.get("args")
        rest["args"] = {**given, **loop} if isinstance(given, dict) else loop
        return rest

    @field_validator("model")
    @classmethod
    def _model_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a hub id, a local model directory or a .gguf file")
        return value

    @field_validator("template")
    @classmethod
    def _template_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "is empty; give a built-in template name or a Jinja string, or leave it unset to "
                "use the tokenizer's own"
            )
        return value

    @model_validator(mode="after")
    def _check_cross_fields(self) -> TrainConfig:
        if self.args.eval_steps is not None and not self.data.has_eval:
            raise ValueError("eval_steps is set but neither data.eval nor data.test_size is")
        if self.strategy == "fsdp" and self.finetuning == "qlora":
            raise ValueError(
                "strategy: fsdp does not shard QLoRA's 4-bit weights yet; use strategy: ddp for "
                "qlora"
            )
        if self.strategy == "fsdp" and self.args.load_best_model_at_end:
            # the best checkpoint's weights are sharded, and only the main process knows which one
            # is best
            raise ValueError(
                "load_best_model_at_end is not supported with strategy: fsdp yet; the final model "
                "is saved, and metrics.jsonl's eval_loss names the best checkpoint"
            )
        if self.fp16 and self.bf16:
            raise ValueError("bf16 and fp16 are both true; choose one")
        if self.args.bf16_full and (self.finetuning != "full" or self.fp16 or self.bf16 is False):
            raise ValueError(
                f"bf16_full is pure-bf16 full fine-tuning: it needs finetuning: full and bf16 "
                f"(got finetuning {self.finetuning!r}, bf16 {self.bf16}, fp16 {self.fp16})"
            )
        return self

    @classmethod
    def user_keys(cls) -> list[str]:
        """The keys a config file writes at its top level: the loop's, then the others."""
        return [*TrainArgs.model_fields, *(k for k in cls.model_fields if k != "args")]

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing as set, or on for QLoRA (its point is the least memory) when
        unset."""
        if self.args.gradient_checkpointing is None:
            return self.finetuning == "qlora"
        return self.args.gradient_checkpointing

    def train_args(self) -> TrainArgs:
        """The loop's arguments (gradient checkpointing resolved)."""
        return self.args.model_copy(update={"gradient_checkpointing": self.checkpointing})

    def as_written(self, **dump: Any) -> dict[str, Any]:
        """The config as a file writes it: the loop's keys at the top level, then the others."""
        return {**self.args.model_dump(**dump), **self.model_dump(exclude={"args"}, **dump)}


def resume_may_change(model: type[BaseModel] = TrainConfig, prefix: str = "") -> set[str]:
    """The dotted keys a resume may change (fields marked RESUME_MAY_CHANGE), the loop's at the top
    level."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if name == "args" and model is TrainConfig:
            keys |= resume_may_change(TrainArgs, prefix)
        elif field.json_schema_extra == RESUME_MAY_CHANGE:
            keys.add(prefix + name)
        elif name == "data":
            keys |= resume_may_change(DataConfig, f"{prefix}data.")
    return keys
