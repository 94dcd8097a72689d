"""The training config: typed, documented, validated once with every problem reported at once.

Training keys take TRL `SFTConfig`'s names where the meaning is the same, so a TRL user's values
carry over.
"""

from chattune.config.base import DEFAULT_MODEL, DEVICE_PATTERN, RESUME_MAY_CHANGE, TrainOn
from chattune.config.load import (
    build_config,
    cache_dir,
    load_config,
    parse_overrides,
    set_dotted,
    validated,
)
from chattune.config.loop_args import TrainArgs
from chattune.config.sections import (
    CompareConfig,
    DataConfig,
    DataSource,
    ExportConfig,
    Format,
    FsdpSettings,
    JudgeConfig,
    LoraSettings,
    OwnTask,
    Role,
    Truncation,
)
from chattune.config.train_config import TrainConfig, resume_may_change

__all__ = [
    "DEFAULT_MODEL",
    "DEVICE_PATTERN",
    "RESUME_MAY_CHANGE",
    "CompareConfig",
    "DataConfig",
    "DataSource",
    "ExportConfig",
    "Format",
    "FsdpSettings",
    "JudgeConfig",
    "LoraSettings",
    "OwnTask",
    "Role",
    "TrainArgs",
    "TrainConfig",
    "TrainOn",
    "Truncation",
    "build_config",
    "cache_dir",
    "load_config",
    "parse_overrides",
    "resume_may_change",
    "set_dotted",
    "validated",
]
