"""chattune: supervised fine-tuning of chat models with exact loss masks.

    import chattune
    cfg = chattune.load_config("configs/gsm8k-demo.yaml", ["max_steps=20"])
    result = chattune.run_training(cfg)

Public names load lazily, so `chattune --help` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from chattune.held_messages import hold_import_messages

__version__ = "0.1.0"

# a library's advice logged as chattune's modules import it (bitsandbytes' CPU backend) waits for
# the next run's warnings.log instead of being printed
hold_import_messages()

_EXPORTS = {
    "Conversation": "chattune.data.schema",
    "Message": "chattune.data.schema",
    "Rendered": "chattune.templates.render",
    "IGNORE_INDEX": "chattune.labels",
    "render": "chattune.templates.render",
    "setup_chat_format": "chattune.templates.setup",
    "clone_chat_template": "chattune.templates.setup",
    "ChatMlSpecialTokens": "chattune.templates.setup",
    "get_formatting_func_from_dataset": "chattune.compat.trl.formatting",
    "BUILTIN_TEMPLATES": "chattune.templates.builtin",
    "TrainConfig": "chattune.config",
    "load_config": "chattune.config",
    "build_config": "chattune.config",
    "load_rows": "chattune.data.load",
    "to_conversation": "chattune.data.convert",
    "prepare_examples": "chattune.prepare.examples",
    "load_model_and_tokenizer": "chattune.model.load",
    "resolve_model_path": "chattune.model.load",
    "apply_lora": "chattune.model.lora",
    "load_adapter": "chattune.model.lora",
    "merge_adapter": "chattune.model.lora",
    "load_for_inference": "chattune.model.inference",
    "merge_saved_adapter": "chattune.model.inference",
    "resolve_device": "chattune.model.device",
    "generate_batch": "chattune.generate",
    "stream_reply": "chattune.generate",
    "score_gsm8k": "chattune.eval.scoring",
    "run_training": "chattune.pipeline",
    "SFTConfig": "chattune.compat.trl",
    "SFTTrainer": "chattune.compat.trl",
    "DataCollatorForCompletionOnlyLM": "chattune.compat.trl",
    "ChattuneError": "chattune.errors",
    "ConfigError": "chattune.errors",
    "DataError": "chattune.errors",
    "TemplateError": "chattune.errors",
    "ModelError": "chattune.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'chattune' has no attribute {name!r}")
