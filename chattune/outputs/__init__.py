"""Outputs stage: metrics, plots, saved adapters and models."""
