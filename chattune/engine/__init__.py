"""One home for a training run, shared by `chattune train` (chattune.pipeline) and SFTTrainer
(chattune.compat.trl): set-up (setup.py), the model and tokenizer (base.py), training with its
outputs and the final save (training.py). It imports no front end."""
