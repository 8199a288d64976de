"""Training methods. One batch builder (``batch.py``) serves them all: CoT is CoLaR at c = 1 without
the latent loss, No-CoT is CoT with no reasoning; Coconut and CODI add continuous-thought slots
(filled by ``thoughts.py``), iCoT removes reasoning tokens. Each method has a config dataclass and a
trainer built on ``transformers.Trainer`` (TRL's pattern)."""
