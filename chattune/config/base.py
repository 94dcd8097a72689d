"""What every config section shares: strict validation (unknown keys, inf/nan and integers torch
cannot hold are refused) and the value types several sections use."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
TrainOn = Literal["all_assistant", "last_assistant", "all"]
INT64_MAX = (
    2**63 - 1
)  # torch's integers (steps, lengths, seeds) are int64; a larger one fails deep inside

# Field metadata of a key that does not change what is trained or how each step updates it (where
# and how often a run logs, evaluates and saves, how long it goes on, speed features tested to give
# the same losses): a resume may change it. Every other key (a new one too) must match the
# checkpoint's config.
RESUME_MAY_CHANGE: dict[str, Any] = {"resume_may_change": True}


class _Strict(BaseModel):
    # inf and nan are refused: an infinite epoch count or learning rate only fails later, far from
    # the key
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _fits_int64(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise ValueError(f"expected an integer of at most {INT64_MAX}")
        return value
