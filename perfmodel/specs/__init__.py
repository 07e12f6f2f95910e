"""Ground floor: what a model and a GPU *are*. `models` (ModelSpec, overrides, config.json),
`families` (per-family traits: small kernels, positions, weight names, sharding rules), `catalog`
(named models with their sources), `hardware` (GPU datasheets and fitted constants) and `safeio`
(the one atomic, symlink-safe writer and the bounded readers every file goes through). Imports
nothing else of perfmodel; every other subpackage builds on it."""
