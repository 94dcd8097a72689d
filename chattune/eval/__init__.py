"""Evaluation: benchmarks through lm-evaluation-harness (offline subsets shipped in benchmarks/,
lm-eval's own task names, a user's task YAML), scored on a model chattune loads."""
