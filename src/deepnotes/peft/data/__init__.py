"""Embedded pre-training corpus and deterministic synthetic fine-tuning tasks."""
