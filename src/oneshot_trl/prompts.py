"""The paper's training prompt suffix (a dependency-free module: cheap to import from any command)."""

# Appended to every training problem by the official data files (One-Shot-RLVR's `data/train/one_shot_rlvr/*.parquet`, bundled
# here as `resources/train/*.jsonl`); evaluation prompts
# do not carry it (see eval/templates.py).
TRAIN_PROMPT_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."
