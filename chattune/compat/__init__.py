"""Compatibility front ends: other libraries' APIs on chattune's engine (trl: TRL's SFTTrainer and
SFTConfig)."""
