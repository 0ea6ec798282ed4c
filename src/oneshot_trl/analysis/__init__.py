"""`oneshot-trl analyze`: the paper's diagnostics from a training run or eval outputs, read through `oneshot_trl.run`.

`stats` loads what a run recorded and computes every number (reflection words, training-accuracy curves, format vs
reasoning, best checkpoint, post-saturation gain); `report` draws the plots and writes report.md and analysis.json;
`cli` is the command.
"""
