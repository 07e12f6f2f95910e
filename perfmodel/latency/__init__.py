"""How long one forward takes: the `LatencyProvider` protocol and its implementations — measured
profile rows (`measured`), operator composition (`operators`), an analytical roofline (`analytical`),
tensor-parallel all-reduce curves (`tp`) and calibrated corrections (`corrected`) — each reporting
the `Source` of every component as data. `providers.build_provider` is the one place that chooses
among them. Depends only on `perfmodel.specs`."""
