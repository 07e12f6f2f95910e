"""Ground floor: what a model and a GPU *are*. `models` (ModelSpec, overrides, config.json),
`families` (per-family traits: small kernels, positions, weight names, sharding rules), `catalog`
(named models with their sources) and `hardware` (GPU datasheets and fitted constants). Imports
nothing else of perfmodel; every other subpackage builds on it."""
