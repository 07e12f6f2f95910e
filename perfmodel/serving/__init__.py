"""Serving under load: workloads, an engine step model from the latency providers, a discrete-event
continuous-batching simulation and its report (throughput, TTFT/TPOT percentiles, goodput,
the request rate where speculation stops paying, the best γ per load)."""
