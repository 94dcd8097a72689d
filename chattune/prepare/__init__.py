"""Preparation: data rows -> Conversations -> renderings -> checked, truncated, cached Examples (load, convert,
render, check, cache), counted in PrepareStats."""

from chattune.prepare.examples import PrepareStats, prepare_examples

__all__ = ["PrepareStats", "prepare_examples"]
