"""TRL's SFTConfig / SFTTrainer / DataCollatorForCompletionOnlyLM surface on chattune's engine."""

from chattune.trainer.args import SFTConfig
from chattune.trainer.completion_only import DataCollatorForCompletionOnlyLM
from chattune.trainer.sft import SFTTrainer

__all__ = ["DataCollatorForCompletionOnlyLM", "SFTConfig", "SFTTrainer"]
