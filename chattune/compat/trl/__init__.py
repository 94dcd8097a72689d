"""TRL's SFTConfig / SFTTrainer / DataCollatorForCompletionOnlyLM surface on chattune's engine."""

from chattune.compat.trl.args import SFTConfig
from chattune.compat.trl.completion_only import DataCollatorForCompletionOnlyLM
from chattune.compat.trl.sft import SFTTrainer

__all__ = ["DataCollatorForCompletionOnlyLM", "SFTConfig", "SFTTrainer"]
