"""lm-evaluation-harness's own TruthfulQA MC2 scoring (truthfulqa_mc2.yaml names it as
utils.process_results_mc2)."""

from lm_eval.tasks.truthfulqa.utils import process_results_mc2

__all__ = ["process_results_mc2"]
