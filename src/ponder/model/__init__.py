"""Models: tokenizers built from data, tiny Llama presets, any local Hugging Face causal LM, the latent head."""
