"""The config's sections: data, LoRA, FSDP, the judge, the before/after comparison, own eval tasks,
exports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from chattune.config.base import RESUME_MAY_CHANGE, TrainOn, _Strict


def _columns_not_empty(columns: dict[str, Any] | None) -> dict[str, Any] | None:
    # an empty map is not "detect the format" (that is leaving it unset): every row would fail to
    # convert
    if columns is not None and not columns:
        raise ValueError(
            "maps no column to a role; map at least one (e.g. {question: user, answer: assistant}) "
            "or leave it unset to detect the rows' format"
        )
    return columns


Role = Literal["system", "user", "assistant"]
Format = Literal[
    "messages",
    "sharegpt",
    "alpaca",
    "instruction_response",
    "prompt_completion",
    "prompt_response",
    "query_response",
    "question_answer",
    "question_response",
    "input_output",
    "human_assistant",
    "user_assistant",
    "text",
]
Truncation = Literal["error", "drop", "keep_start", "keep_end"]
_SOURCE_DEFAULTS = ("format", "columns", "prompt_template", "system_prompt")


class DataSource(_Strict):
    """One dataset: where it is and how its rows become conversations. Unset keys take data's
    defaults."""

    path: str = Field(
        description="A local file (.jsonl[.gz], .json, .csv, .parquet), a glob of them, a "
        "`datasets.save_to_disk` directory, or a hub dataset id (`owner/name` or "
        "`owner/name:split`)."
    )
    format: Format | None = Field(None, description="The rows' shape; None detects it per row.")
    columns: dict[str, Role] | None = Field(
        None, description="Map columns to roles, e.g. {question: user, answer: assistant}."
    )
    prompt_template: str | None = Field(
        None,
        description="The user message built from columns, e.g. 'Question: {question}'; the other "
        "roles come from `columns`.",
    )
    system_prompt: str | None = Field(
        None, description="A system message added to every conversation."
    )
    num_samples: int | None = Field(
        None, gt=0, description="Use only the first N rows of this source."
    )
    split: str | None = Field(None, description="Hub split (default train).")
    name: str | None = Field(None, description="Hub dataset config name.")

    _check_columns = field_validator("columns")(_columns_not_empty)

    @model_validator(mode="after")
    def _check_template(self) -> DataSource:
        if self.prompt_template and "assistant" not in (self.columns or {}).values():
            raise ValueError(
                "prompt_template builds the user message; also map the answer column in `columns`, "
                "e.g. {answer: assistant}"
            )
        return self


Sources = str | DataSource | list[str | DataSource]


class DataConfig(_Strict):
    """Where the conversations come from, how rows map to messages, and what happens to bad or long
    rows."""

    train: Sources = Field(
        description="Training data: a path, glob or hub id, a source with its own settings, "
        "or a list of them mixed into one set."
    )
    eval: Sources | None = Field(
        None,
        description="Evaluation data, same kinds as `train`.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    test_size: float | int | None = Field(
        None,
        gt=0,
        description="Hold out this share (0-1) or number of training examples as the eval set.",
    )
    format: Format | None = Field(
        None, description="Default row shape for every source; None detects it."
    )
    columns: dict[str, Role] | None = Field(
        None,
        description="Default column -> role map, e.g. {question: user, answer: assistant}; "
        "None detects the format (messages, ShareGPT, the usual column pairs such as "
        "instruction/response, question/answer or prompt/completion, text).",
    )
    prompt_template: str | None = Field(
        None, description="Default user-message template with {column} fields."
    )
    system_prompt: str | None = Field(
        None, description="A system message added to every conversation."
    )
    num_samples: int | None = Field(
        None, gt=0, description="Use only the first N rows of each training source."
    )
    eval_num_samples: int | None = Field(
        None,
        gt=0,
        description="Use only the first N rows of each eval source.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    train_on: TrainOn = Field(
        "all_assistant",
        description="Which tokens are trained: every assistant turn, "
        "the last one, or every token (plain language modelling).",
    )
    on_bad_row: Literal["error", "skip"] = Field(
        "error",
        description="error: stop before training listing every bad row; skip: leave them out and "
        "count them by reason.",
    )
    truncation: Truncation = Field(
        "keep_start",
        description="Rows longer than max_length: error, drop, keep_start or keep_end.",
    )
    num_proc: int | None = Field(
        None,
        gt=0,
        description="Processes preparing data; None uses every core for large sets.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )
    cache: bool = Field(
        True,
        description="Reuse prepared data from an earlier run with the same inputs.",
        json_schema_extra=RESUME_MAY_CHANGE,
    )

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
    target_modules: str | list[str] = Field(
        "all-linear",
        description="Modules to adapt; 'all-linear' is every linear layer but the output head.",
    )


class FsdpSettings(_Strict):
    """How strategy: fsdp shards the model (PyTorch FSDP2)."""

    reshard_after_forward: bool = Field(
        True,
        description="Free each layer's gathered weights after its forward "
        "(gathered again for backward): less memory, more communication.",
    )
    cpu_offload: bool = Field(
        False,
        description="Keep the sharded weights, gradients and optimizer state in CPU "
        "memory; the GPU holds only what the current layer needs.",
    )
    reduce_in_fp32: bool = Field(
        True, description="Reduce gradients in fp32 when computing in bf16/fp16."
    )


class JudgeConfig(_Strict):
    """An LLM judge of the base and tuned answers (chattune.eval.judge): each pair judged in both
    orders."""

    url: str | None = Field(
        None,
        description="OpenAI-compatible base URL of the judge, e.g. http://localhost:8000/v1 "
        "(vLLM, Ollama, llama.cpp's server, transformers serve); checked before training.",
    )
    model: str | None = Field(
        None,
        description="With url: the served model's name (default: the first it lists). "
        "Without url: a model chattune loads as the judge (hub id, directory, .gguf).",
    )
    rubric: str | None = Field(
        None,
        description="Text file replacing the judge's prompt; it holds {question}, "
        "{answer_a}, {answer_b} (and may hold {reference}) and asks for [[A]], [[B]] or [[C]].",
    )
    max_tokens: int = Field(512, gt=0, description="The judge's reply length cap.")

    @model_validator(mode="after")
    def _url_or_model(self) -> JudgeConfig:
        if not self.url and not self.model:
            raise ValueError(
                "compare.judge needs a url (an OpenAI-compatible server) or a model (loaded "
                "locally)"
            )
        return self


class CompareConfig(_Strict):
    """Greedy generation with the base and the tuned model after training, scored on a task."""

    data: str = Field(description="Questions to answer, same kinds as data.train.")
    columns: dict[str, Role] | None = Field(
        None, description="Column -> role map; the assistant column holds the reference answer."
    )
    num_samples: int = Field(100, gt=0, description="How many rows to generate for.")
    max_new_tokens: int = Field(256, gt=0, description="Generation length cap.")
    batch_size: int = Field(32, gt=0, description="Prompts generated together.")
    show: int = Field(3, ge=0, description="Answers printed side by side.")
    judge: JudgeConfig | None = Field(
        None,
        description="An LLM judge of base vs tuned answers (judge.json, "
        "judge.jsonl); no judge by default.",
    )

    _check_columns = field_validator("columns")(_columns_not_empty)


class OwnTask(_Strict):
    """A task of your own: a data file, its prompt and answer columns, and a metric
    (chattune.eval.own_task)."""

    data: str = Field(description="Data file (jsonl, json, csv, parquet).")
    prompt: str = Field(description="Column holding the prompt (the user message).")
    answer: str = Field(
        description="Column holding the reference answer (for choice: its index or text)."
    )
    metric: str = Field(
        description="exact_match, contains, last_number, regex:PATTERN, gsm8k, choice or "
        "python:module:function."
    )
    choices: str | None = Field(None, description="Column holding the choices (metric choice).")
    name: str | None = Field(None, description="The task's name (default: the data file's stem).")
    max_new_tokens: int = Field(256, gt=0, description="Generation length cap.")


class ExportConfig(_Strict):
    """Exports written after training (chattune.export), each verified in llama.cpp against the
    trained model."""

    gguf: list[str] = Field(
        default_factory=list,
        description="GGUF files to write, one per type: f16, bf16, q8_0, "
        "q4_k_m, q5_k_m, ... (OUTPUT_DIR/<run>-<type>.gguf; needs chattune[gguf]).",
    )
