"""oneshot-trl: one-shot RLVR (arXiv 2504.20571) on the Hugging Face stack."""

__version__ = "0.1.0"
