"""Training methods. One batch builder (``batch.py``) serves them all: CoT is CoLaR at c = 1 without
the latent loss, No-CoT is CoT with no reasoning. Each method has a config dataclass and a trainer built
on ``transformers.Trainer`` (TRL's pattern)."""
