"""Readers and writers of outside formats: SpikeGPT checkpoints and tokenizers in."""
