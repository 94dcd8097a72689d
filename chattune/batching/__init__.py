"""Batching stage: verified Examples into padded or packed Batches."""

from chattune.batching.collate import Batch, Example, collate, pack, plan_batches

__all__ = ["Batch", "Example", "collate", "pack", "plan_batches"]
