"""The Hugging Face Hub: pull any model revision, push every checkpoint to its own branch, model cards.

`resolve` (a local dir or a Hub id@revision -> a local folder, offline from the cache; step branches), `push`
(`HubPushCallback`, retries, `push_eval_results`), `cards` (eval results as model-index, card rendering),
`tokens` (tokens are never printed, logged or uploaded) and `cli` (`oneshot-trl card`).
"""
