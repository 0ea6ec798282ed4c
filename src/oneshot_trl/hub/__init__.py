"""The Hugging Face Hub: `resolve` (a local dir or a Hub id@revision -> a local folder, offline from the cache),
`push` (`HubPushCallback`: checkpoint N -> branch step-NNNNNN, final model -> main; `push_eval_results`; `retry`
for their Hub calls), `cards` (eval results as model-index, card rendering), `tokens` (never printed, logged or
uploaded) and `cli` (`oneshot-trl card`).
"""
