"""Evaluation: benchmarks, prompt templates, protocols, generation, scoring (with `oneshot_trl.grading`) and metrics."""
