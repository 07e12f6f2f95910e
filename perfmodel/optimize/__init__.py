"""The optimiser: which draft and which γ, per batch × context × mode. `search` (the vectorised
grid search), `space` (design spaces of drafts that do not exist yet), `policy` (γ by batch),
`report`, `run` (one optimisation end to end), `export` (vLLM / SGLang / HF configs) and
`export_schema` (those engines' documented settings, checked). Builds on
`perfmodel.specdec` and `perfmodel.latency`; nothing below imports it."""
