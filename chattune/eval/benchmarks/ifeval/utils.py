"""lm-evaluation-harness's own IFEval checks, with the NLTK data they need read from beside this
file: lm-eval's instructions_util downloads punkt_tab when it is imported unless NLTK finds it, and
nothing is downloaded here."""

from pathlib import Path

import nltk

nltk.data.path.insert(0, str(Path(__file__).parent / "nltk_data"))

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: E402

__all__ = ["agg_inst_level_acc", "process_results"]
