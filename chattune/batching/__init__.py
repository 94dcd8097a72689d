"""Batching stage: verified Examples, padded or packed Batches."""

from chattune.batching.collate import Batch, Example, collate, pack, plan_batches
from chattune.batching.prepare import PrepareStats, prepare_examples

__all__ = ["Batch", "Example", "PrepareStats", "collate", "pack", "plan_batches", "prepare_examples"]
