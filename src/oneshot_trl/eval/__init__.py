"""Evaluation: benchmarks, prompt templates, protocols, generation, grading and metrics."""
