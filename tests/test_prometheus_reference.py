"""Two implementations agreeing: specperf's own Prometheus text parser (calibration/prometheus.py,
kept because it is small, streaming-free, fuzzed and dependency-free) against the reference parser of
`prometheus_client` (the library vLLM itself exports with), on the vLLM /metrics fixtures: every
spec-decode counter sample, its labels and its value must be the same."""
from pathlib import Path

import pytest

from specperf.calibration.prometheus import COUNTERS, parse_scrapes

parser = pytest.importorskip("prometheus_client.parser")
CAL = Path(__file__).parent / "data" / "calibration"


def reference(text: str) -> dict:
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            name = s.name[: -len("_total")] if s.name.endswith("_total") else s.name
            if name in COUNTERS:
                out[(name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


@pytest.mark.parametrize("fixture", ["vllm_metrics.txt", "vllm_no_spec.txt"])
def test_counter_samples_equal_prometheus_client(fixture):
    text = (CAL / fixture).read_text()
    ours = {}
    for scrape in parse_scrapes(text, fixture):
        for (name, labels), (value, _line) in scrape.items():
            if name in COUNTERS:
                ours[(name, tuple(sorted(labels)))] = float(value)
    ref = reference(text)
    assert ours == ref
    if fixture == "vllm_metrics.txt":
        assert len(ref) >= 7  # drafts, draft tokens, accepted and per-position counters are all there
