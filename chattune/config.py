"""The training config: typed, documented, validated once with every problem reported at once.

Training keys take TRL `SFTConfig`'s names where the meaning is the same, so a TRL user's values carry over.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chattune.config_paths import rebase_config_paths
from chattune.errors import ConfigError, did_you_mean

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
TrainOn = Literal["all_assistant", "last_assistant", "all"]


_M = TypeVar("_M", bound=BaseModel)
INT64_MAX = 2**63 - 1  # torch's integers (steps, lengths, seeds) are int64; a larger one fails deep inside


class _Strict(BaseModel):
    # inf and nan are refused: an infinite epoch count or learning rate only fails later, far from the key
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _fits_int64(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise ValueError(f"expected an integer of at most {INT64_MAX}")
        return value


def _columns_not_empty(columns: dict[str, Any] | None) -> dict[str, Any] | None:
    # an empty map is not "detect the format" (that is leaving it unset): every row would fail to convert
    if columns is not None and not columns:
        raise ValueError("maps no column to a role; map at least one (e.g. {question: user, answer: assistant}) "
                         "or leave it unset to detect the rows' format")
    return columns


Role = Literal["system", "user", "assistant"]
Format = Literal["messages", "sharegpt", "alpaca", "instruction_response", "prompt_completion", "prompt_response",
                 "query_response", "question_answer", "question_response", "input_output", "human_assistant",
                 "user_assistant", "text"]
Truncation = Literal["error", "drop", "keep_start", "keep_end"]
_SOURCE_DEFAULTS = ("format", "columns", "prompt_template", "system_prompt")


class DataSource(_Strict):
    """One dataset: where it is and how its rows become conversations. Unset keys take data's defaults."""

    path: str = Field(description="A local file (.jsonl[.gz], .json, .csv, .parquet), a glob of them, a "
                      "`datasets.save_to_disk` directory, or a hub dataset id (`owner/name` or `owner/name:split`).")
    format: Format | None = Field(None, description="The rows' shape; None detects it per row.")
    columns: dict[str, Role] | None = Field(
        None, description="Map columns to roles, e.g. {question: user, answer: assistant}.")
    prompt_template: str | None = Field(
        None, description="The user message built from columns, e.g. 'Question: {question}'; the other roles "
        "come from `columns`.")
    system_prompt: str | None = Field(None, description="A system message added to every conversation.")
    num_samples: int | None = Field(None, gt=0, description="Use only the first N rows of this source.")
    split: str | None = Field(None, description="Hub split (default train).")
    name: str | None = Field(None, description="Hub dataset config name.")

    _check_columns = field_validator("columns")(_columns_not_empty)

    @model_validator(mode="after")
    def _check_template(self) -> DataSource:
        if self.prompt_template and "assistant" not in (self.columns or {}).values():
            raise ValueError("prompt_template builds the user message; also map the answer column in `columns`, "
                             "e.g. {answer: assistant}")
        return self


Sources = str | DataSource | list[str | DataSource]


class DataConfig(_Strict):
    """Where the conversations come from, how rows map to messages, and what happens to bad or long rows."""

    train: Sources = Field(description="Training data: a path, glob or hub id, a source with its own settings, "
                           "or a list of them mixed into one set.")
    eval: Sources | None = Field(None, description="Evaluation data, same kinds as `train`.")
    test_size: float | int | None = Field(
        None, gt=0, description="Hold out this share (0-1) or number of training examples as the eval set.")
    format: Format | None = Field(None, description="Default row shape for every source; None detects it.")
    columns: dict[str, Role] | None = Field(
        None, description="Default column -> role map, e.g. {question: user, answer: assistant}; "
        "None detects the format (messages, ShareGPT, the usual column pairs such as instruction/response, "
        "question/answer or prompt/completion, text).")
    prompt_template: str | None = Field(None, description="Default user-message template with {column} fields.")
    system_prompt: str | None = Field(None, description="A system message added to every conversation.")
    num_samples: int | None = Field(None, gt=0, description="Use only the first N rows of each training source.")
    eval_num_samples: int | None = Field(None, gt=0, description="Use only the first N rows of each eval source.")
    train_on: TrainOn = Field("all_assistant", description="Which tokens are trained: every assistant turn, "
                              "the last one, or every token (plain language modelling).")
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="error: stop before training listing every bad row; skip: leave them out and count "
        "them by reason.")
    truncation: Truncation = Field(
        "keep_start", description="Rows longer than max_length: error, drop, keep_start or keep_end.")
    num_proc: int | None = Field(None, gt=0, description="Processes preparing data; None uses every core for "
                                 "large sets.")
    cache: bool = Field(True, description="Reuse prepared data from an earlier run with the same inputs.")

    _check_columns = field_validator("columns")(_columns_not_empty)

    @field_validator("train")
    @classmethod
    def _some_train_data(cls, value: Sources) -> Sources:
        if isinstance(value, list) and not value:
            raise ValueError("lists no training data; give at least one path, glob or hub id")
        return value

    @model_validator(mode="after")
    def _check_split(self) -> DataConfig:
        if self.test_size is not None and self.eval is not None:
            raise ValueError("set data.eval or data.test_size, not both")
        if isinstance(self.test_size, float) and self.test_size >= 1:
            raise ValueError(f"data.test_size as a share must be below 1, got {self.test_size}")
        return self

    def sources(self, which: Literal["train", "eval"] = "train") -> list[DataSource]:
        """The train or eval sources with data's defaults filled in."""
        given = self.train if which == "train" else self.eval
        if given is None:
            return []
        limit = self.num_samples if which == "train" else self.eval_num_samples
        out = []
        for item in given if isinstance(given, list) else [given]:
            src = DataSource(path=item) if isinstance(item, str) else item.model_copy()
            for key in _SOURCE_DEFAULTS:
                if getattr(src, key) is None and getattr(self, key) is not None:
                    setattr(src, key, getattr(self, key))
            if src.num_samples is None and limit is not None:
                src.num_samples = limit
            out.append(src)
        return out

    @property
    def has_eval(self) -> bool:
        return self.eval is not None or self.test_size is not None


class LoraSettings(_Strict):
    """LoRA settings, passed to peft."""

    r: int = Field(16, gt=0, description="Rank of the update matrices.")
    alpha: int = Field(32, gt=0, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt; 'all-linear' is "
                                            "every linear layer but the output head.")


class FsdpSettings(_Strict):
    """How strategy: fsdp shards the model (PyTorch FSDP2)."""

    reshard_after_forward: bool = Field(True, description="Free each layer's gathered weights after its forward "
                                        "(gathered again for backward): less memory, more communication.")
    cpu_offload: bool = Field(False, description="Keep the sharded weights, gradients and optimizer state in CPU "
                              "memory; the GPU holds only what the current layer needs.")
    reduce_in_fp32: bool = Field(True, description="Reduce gradients in fp32 when computing in bf16/fp16.")


class JudgeConfig(_Strict):
    """An LLM judge of the base and tuned answers (chattune.eval.judge): each pair judged in both orders."""

    url: str | None = Field(None, description="OpenAI-compatible base URL of the judge, e.g. http://localhost:8000/v1 "
                            "(vLLM, Ollama, llama.cpp's server, transformers serve); checked before training.")
    model: str | None = Field(None, description="With url: the served model's name (default: the first it lists). "
                              "Without url: a model chattune loads as the judge (hub id, directory, .gguf).")
    rubric: str | None = Field(None, description="Text file replacing the judge's prompt; it holds {question}, "
                               "{answer_a}, {answer_b} (and may hold {reference}) and asks for [[A]], [[B]] or [[C]].")
    max_tokens: int = Field(512, gt=0, description="The judge's reply length cap.")

    @model_validator(mode="after")
    def _url_or_model(self) -> JudgeConfig:
        if not self.url and not self.model:
            raise ValueError("compare.judge needs a url (an OpenAI-compatible server) or a model (loaded locally)")
        return self


class CompareConfig(_Strict):
    """Greedy generation with the base and the tuned model after training, scored on a task."""

    data: str = Field(description="Questions to answer, same kinds as data.train.")
    columns: dict[str, Role] | None = Field(
        None, description="Column -> role map; the assistant column holds the reference answer.")
    num_samples: int = Field(100, gt=0, description="How many rows to generate for.")
    max_new_tokens: int = Field(256, gt=0, description="Generation length cap.")
    batch_size: int = Field(32, gt=0, description="Prompts generated together.")
    show: int = Field(3, ge=0, description="Answers printed side by side.")
    judge: JudgeConfig | None = Field(None, description="An LLM judge of base vs tuned answers (judge.json, "
                                      "judge.jsonl); no judge by default.")

    _check_columns = field_validator("columns")(_columns_not_empty)


class OwnTask(_Strict):
    """A task of your own: a data file, its prompt and answer columns, and a metric (chattune.eval.own_task)."""

    data: str = Field(description="Data file (jsonl, json, csv, parquet).")
    prompt: str = Field(description="Column holding the prompt (the user message).")
    answer: str = Field(description="Column holding the reference answer (for choice: its index or text).")
    metric: str = Field(description="exact_match, contains, last_number, regex:PATTERN, gsm8k, choice or "
                        "python:module:function.")
    choices: str | None = Field(None, description="Column holding the choices (metric choice).")
    name: str | None = Field(None, description="The task's name (default: the data file's stem).")
    max_new_tokens: int = Field(256, gt=0, description="Generation length cap.")


class ExportConfig(_Strict):
    """Exports written after training (chattune.export), each verified in llama.cpp against the trained model."""

    gguf: list[str] = Field(default_factory=list, description="GGUF files to write, one per type: f16, bf16, q8_0, "
                            "q4_k_m, q5_k_m, ... (OUTPUT_DIR/<run>-<type>.gguf; needs chattune[gguf]).")


class TrainArgs(_Strict):
    """What the training loop reads: steps, batches, optimizer and schedule, logging, eval and checkpoint cadence,
    batch layout. `chattune train`'s config holds these keys at its top level; SFTTrainer builds them from TRL's
    arguments."""

    output_dir: str = Field("runs/chattune", description="Where everything the run writes goes.")
    num_train_epochs: float = Field(1.0, gt=0, description="Epochs, used when max_steps is -1.")
    max_steps: int = Field(-1, ge=-1, description="Optimizer steps (positive); -1 means use num_train_epochs.")
    per_device_train_batch_size: int = Field(8, gt=0, description="Sequences per micro-batch.")
    per_device_eval_batch_size: int = Field(8, gt=0, description="Sequences per eval batch.")
    gradient_accumulation_steps: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(2e-4, gt=0, le=1, description="Peak learning rate (at most 1: an AdamW step "
                                 "moves each weight by about the learning rate).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up linearly.")
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2.")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 disables clipping.")
    logging_steps: int = Field(1, gt=0, description="Log metrics every N optimizer steps.")
    logging_first_step: bool = Field(False, description="Also log the first step.")
    eval_steps: int | None = Field(None, gt=0, description="Evaluate every N steps (needs data.eval).")
    save_steps: int | None = Field(None, gt=0, description="Save a checkpoint (weights, optimizer, scheduler, RNG, "
                                   "data position) every N steps; `--resume` continues from one.")
    save_total_limit: int | None = Field(None, gt=0, description="Keep only the newest N checkpoints (and the best).")
    load_best_model_at_end: bool = Field(False, description="Keep the checkpoint with the lowest eval loss and save "
                                         "its weights as the final model (needs eval_steps and save_steps).")
    eval_max_new_tokens: int = Field(64, gt=0, description="Length cap of those answers.")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list, description="Trackers that also receive the metrics (each an optional extra).")
    max_length: int = Field(1024, gt=0, description="Longest sequence in tokens; longer rows follow "
                            "data.truncation.")
    packing: bool = Field(False, description="Pack several conversations into each row.")
    padding_free: bool = Field(False, description="Each micro-batch as one sequence (its documents end to end, "
                               "position ids restarting per document): no compute on padding, exact. Pays with "
                               "variable-length attention; with SDPA the block-diagonal mask is dense.")
    compile: bool = Field(False, description="torch.compile each decoder layer (regional, dynamic shapes); "
                          "the first steps pay the compile time.")
    max_tokens_per_batch: int | None = Field(None, gt=0, description="Fill each micro-batch up to this many tokens "
                                             "(padded: rows x longest row) instead of per_device_train_batch_size "
                                             "rows.")
    bf16_full: bool = Field(False, description="Full fine-tuning in pure bf16: bf16 weights, an AdamW with "
                            "Kahan summation (torch-optimi), no fp32 master copy; half the memory.")
    gradient_checkpointing: bool | None = Field(None, description="Trade compute for memory; None: on for "
                                                "qlora, off otherwise.")
    gradient_checkpointing_kwargs: dict[str, Any] | None = Field(None, description="Passed to transformers' "
                                                                 "gradient checkpointing (default "
                                                                 "{use_reentrant: false}).")
    activation_offloading: bool = Field(False, description="Keep the activations saved for backward in CPU memory "
                                        "(pinned) instead of the GPU's: less GPU memory, more transfers.")
    loss_type: Literal["nll", "dft"] = Field("nll", description="nll: token cross-entropy; dft: each token's "
                                             "cross-entropy weighted by its (detached) probability, as TRL's "
                                             "loss_type dft (Dynamic Fine-Tuning).")
    seed: int = Field(42, ge=0, lt=2**32, description="Seed for data order, init and dropout (0 to 2**32 - 1, "
                      "the range transformers' set_seed takes).")

    @field_validator("max_steps")
    @classmethod
    def _steps_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 steps would train nothing; set a positive number, or -1 to train num_train_epochs")
        return value

    @model_validator(mode="after")
    def _check_best(self) -> TrainArgs:
        if self.load_best_model_at_end and not (self.eval_steps and self.save_steps):
            raise ValueError("load_best_model_at_end needs eval_steps and save_steps")
        return self

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing on or off (TrainConfig turns an unset value on for QLoRA)."""
        return bool(self.gradient_checkpointing)


class TrainConfig(TrainArgs):
    """Everything `chattune train` needs: the loop's TrainArgs and the model, data, precision and outputs."""

    model: str = Field(DEFAULT_MODEL, description="Hub id, local model directory or .gguf file.")
    template: str | None = Field(None, description="Built-in template name or a Jinja string; None uses the "
                                 "tokenizer's own (chatml is set up when it has none).")
    template_kwargs: dict[str, Any] | None = Field(
        None, description="Keyword arguments for the chat template, as apply_chat_template passes them "
        "(e.g. {enable_thinking: false} for Qwen3).")
    trust_remote_code: bool = Field(False, description="Run code shipped with a hub model (off: it is unsafe).")
    data: DataConfig
    finetuning: Literal["lora", "qlora", "full"] = Field(
        "lora", description="LoRA adapters, QLoRA (LoRA on a 4-bit NF4 base through bitsandbytes), or full "
        "fine-tuning.")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    compare: CompareConfig | None = Field(None, description="Before/after generation comparison.")
    eval_tasks: list[str | OwnTask] = Field(
        default_factory=list, description="Benchmarks scored on the base and the tuned model through "
        "lm-evaluation-harness: shipped offline tasks (gsm8k, ifeval, truthfulqa_mc1, truthfulqa_mc2), lm-eval "
        "task names, task YAML paths, or your own task ({data, prompt, answer, metric}); side by side with "
        "standard errors in compare.json and the report.")
    eval_tasks_limit: int | None = Field(None, gt=0, description="Score only the first N items of each of "
                                         "eval_tasks (all of them when unset).")
    export: ExportConfig | None = Field(None, description="GGUF exports after training, verified in llama.cpp.")
    strategy: Literal["ddp", "fsdp"] | None = Field(
        None, description="With several processes: ddp (a full replica per process) or fsdp (weights, gradients "
        "and optimizer state sharded over the processes, PyTorch FSDP2; also on one process, for CPU offload). "
        "None: ddp.")
    fsdp: FsdpSettings = Field(default_factory=FsdpSettings)

    eval_generations: int = Field(3, ge=0, description="Eval prompts answered (greedy) at each eval, logged.")
    liger: bool = Field(False, description="Liger Kernel's fused RMSNorm, RoPE, SwiGLU and linear cross-entropy "
                        "(CUDA GPUs, with chattune[liger]).")
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] | None = Field(
        None, description="Attention kernel (transformers' name). With padding_free, flex_attention and "
        "flash_attention_2 attend within each document only instead of over a dense block mask. None: sdpa, or for "
        "padding_free on a CUDA GPU flash_attention_2 where flash-attn is installed, else flex_attention.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto (the first GPU, else mps, else the "
                        "CPU), cpu, cuda, cuda:N or mps.")
    bf16: bool | None = Field(None, description="bf16 compute (a LoRA/QLoRA base is loaded in bf16, full "
                              "fine-tuning autocasts fp32 weights); None turns it on where the hardware is fast "
                              "at it.")
    fp16: bool = Field(False, description="fp16 compute with loss scaling, for GPUs without bf16.")
    merge: bool = Field(True, description="Also save a merged model (merged/) after LoRA or QLoRA training; false: "
                        "the adapter alone.")
    merge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The dtype merged/ is saved in; auto: the dtype the base was trained in (bf16 where the "
        "run loaded its base in bf16, fp32 elsewhere). The merge and its logit check run in fp32 either way.")
    overwrite_output_dir: bool = Field(False, description="Start afresh in an output_dir that holds another run's "
                                       "checkpoints, removing them (without it, such a run is refused: resume it "
                                       "or choose another output_dir).")

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
            raise ValueError("is empty; give a built-in template name or a Jinja string, or leave it unset to use "
                             "the tokenizer's own")
        return value

    @model_validator(mode="after")
    def _check_cross_fields(self) -> TrainConfig:
        if self.eval_steps is not None and not self.data.has_eval:
            raise ValueError("eval_steps is set but neither data.eval nor data.test_size is")
        if self.strategy == "fsdp" and self.finetuning == "qlora":
            raise ValueError("strategy: fsdp does not shard QLoRA's 4-bit weights yet; use strategy: ddp for qlora")
        if self.strategy == "fsdp" and self.load_best_model_at_end:
            # the best checkpoint's weights are sharded, and only the main process knows which one is best
            raise ValueError("load_best_model_at_end is not supported with strategy: fsdp yet; the final model is "
                             "saved, and metrics.jsonl's eval_loss names the best checkpoint")
        if self.fp16 and self.bf16:
            raise ValueError("bf16 and fp16 are both true; choose one")
        if self.bf16_full and (self.finetuning != "full" or self.fp16 or self.bf16 is False):
            raise ValueError(f"bf16_full is pure-bf16 full fine-tuning: it needs finetuning: full and bf16 "
                             f"(got finetuning {self.finetuning!r}, bf16 {self.bf16}, fp16 {self.fp16})")
        return self

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing as set, or on for QLoRA (its point is the least memory) when unset."""
        if self.gradient_checkpointing is None:
            return self.finetuning == "qlora"
        return self.gradient_checkpointing

    def train_args(self) -> TrainArgs:
        """The loop's arguments alone (gradient checkpointing resolved)."""
        values = {k: getattr(self, k) for k in TrainArgs.model_fields}
        return TrainArgs.model_validate({**values, "gradient_checkpointing": self.checkpointing})


def cache_dir() -> Path:
    """chattune's cache: $CHATTUNE_CACHE, else $XDG_CACHE_HOME/chattune, else ~/.cache/chattune."""
    if os.environ.get("CHATTUNE_CACHE"):
        return Path(os.environ["CHATTUNE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chattune"


def _is_union_branch(part: Any) -> bool:
    # pydantic names the alternative of a union it tried (`str`, `function-after[...]`, `list[...]`) in the
    # location; the user wrote no such key
    return part in ("str", "int", "float", "bool") or "[" in str(part)


def _format_validation_error(err: ValidationError) -> list[str]:
    errors = []
    for e in err.errors():
        loc = [p for p in e["loc"] if not _is_union_branch(p)]
        errors.append((".".join(map(str, loc)), len(loc) < len(e["loc"]), e))
    # of a union's alternatives, the one that got deepest into the value is the one the user meant
    deep = [key for key, union, _ in errors if union]
    problems: list[str] = []
    for key, union, e in errors:
        if union and any(other.startswith(key + ".") for other in deep):
            continue
        got = "" if isinstance(e.get("input"), dict | list) else f", got {e.get('input')!r}"
        if e["type"] == "extra_forbidden":
            text = f"{key}: unknown key" + did_you_mean(globals().get(err.title),  # TrainConfig or a section
                                                        [p for p in e["loc"] if not _is_union_branch(p)])
        elif e["type"] == "missing":
            text = f"{key}: required key is missing"
        elif e["type"] == "value_error":  # chattune's own check: its message; one across keys names them
            message = str(e["ctx"]["error"])
            text = message if not key or message.startswith(key + ".") else f"{key}: {message}{got}"
        else:
            text = f"{key or '(config)'}: {e['msg']}{got}"
        if text not in problems:
            problems.append(text)
    return problems


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree['a']['b'] = value` for `dotted='a.b'`, creating levels as needed."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = tree.get(p)
        if not isinstance(node, dict):
            node = tree[p] = {}
        tree = node
    tree[leaf] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """Parse `key=value` strings; values are YAML, so `3`, `true`, `[a, b]` get their types."""
    parsed, problems = [], []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            problems.append(f"--set {pair!r}: expected key=value")
            continue
        try:
            parsed.append((key.strip(), yaml.safe_load(raw)))
        except yaml.YAMLError as e:
            problems.append(f"--set {key}: value is not valid YAML ({e})")
    if problems:
        raise ConfigError(problems)
    return parsed


def validated(model: type[_M], raw: dict[str, Any]) -> _M:
    """`model` validated from `raw`, raising one ConfigError that lists every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def build_config(raw: dict[str, Any], overrides: list[str] | None = None) -> TrainConfig:
    """Validate a config dict (plus `key=value` overrides), raising one ConfigError listing every problem."""
    raw = copy.deepcopy(raw)  # an override of a nested key must not change the caller's dict
    for key, value in parse_overrides(overrides or []):
        set_dotted(raw, key, value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: not valid YAML ({e})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of keys at the top level, found {type(raw).__name__}"])
    # paths in the file are read against its folder; paths given in --set overrides, against the current one
    return build_config(rebase_config_paths(raw, path.resolve().parent), overrides)
