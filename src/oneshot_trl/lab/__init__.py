"""The CPU micro-lab: 1-shot RLVR on a tiny model and a synthetic arithmetic task, in minutes."""
