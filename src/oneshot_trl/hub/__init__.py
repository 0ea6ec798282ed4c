"""Publishing to the Hugging Face Hub: `push` (`HubPushCallback`: checkpoint N -> branch step-NNNNNN, final model ->
main; `push_eval_results`; `retry` for their Hub calls), `cards` (eval results as model-index, card rendering),
`tokens` (never printed, logged or uploaded), `cli` (`oneshot-trl card`) and `push_cli` (`oneshot-trl push`).
Reading a model or a run from the Hub is `oneshot_trl.models` / `oneshot_trl.run`'s.
"""
