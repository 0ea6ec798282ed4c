"""The GPU smoke (`scripts/gpu_smoke.sh`, `python -m oneshot_trl.smoke`): a check script, kept off the package's
core floors; nothing in the library imports it."""
