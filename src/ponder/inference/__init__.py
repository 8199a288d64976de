"""Inference: one batched, KV-cached decoder for every method (tokens and latent steps)."""
