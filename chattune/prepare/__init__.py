"""Preparation: data rows -> Conversations -> renderings -> checked, truncated, cached Examples
(load, convert, render, check, cache), counted in PrepareStats."""

from chattune.prepare.examples import prepare_examples
from chattune.prepare.rows import PrepareStats

__all__ = ["PrepareStats", "prepare_examples"]
