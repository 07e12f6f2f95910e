"""vLLM /metrics reading under hostile servers and misordered scrapes (issue 25): a whole-request
deadline (a server dripping one byte at a time is cut off), a size limit (an endless body), ASCII-only
position labels, and a --baseline scrape taken after the trace ordered by its counters (not called
a server restart and answered with the whole-run α)."""
import http.server
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.calibration import prometheus
from specperf.calibration.data import TraceError
from specperf.calibration.traces import read_trace
from specperf.cli.main import app

TWO = Path(__file__).resolve().parent / "data" / "calibration" / "vllm_two_scrapes.txt"


def _scrapes():
    lines = TWO.read_text().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("# HELP vllm:spec_decode_num_drafts_total")]
    return "\n".join(lines[starts[0]:starts[1]]) + "\n", "\n".join(lines[starts[1]:]) + "\n"


class _Server:
    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(body_fn):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                body_fn(self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *a):
            pass
    return H


def test_a_dripping_server_is_cut_off_at_the_deadline():
    def drip(w):
        for _ in range(60):
            w.write(b"#")
            w.flush()
            time.sleep(0.25)
    s = _Server(_handler(drip))
    try:
        t0 = time.monotonic()
        with pytest.raises(TraceError, match="did not finish its answer within 2 s"):
            prometheus.fetch_metrics(s.url, deadline_s=2.0)
        assert time.monotonic() - t0 < 2.0 + prometheus.READ_TIMEOUT_S
    finally:
        s.close()


def test_an_endless_body_is_cut_off_at_the_size_limit():
    def endless(w):
        block = b"# " + b"x" * 65534
        for _ in range(10000):
            w.write(block)
    s = _Server(_handler(endless))
    try:
        with pytest.raises(TraceError, match="more than 1048576 bytes"):
            prometheus.fetch_metrics(s.url, limit_bytes=2 ** 20)
    finally:
        s.close()


def test_the_cli_names_the_deadline(monkeypatch):
    def drip(w):
        for _ in range(40):
            w.write(b"#")
            w.flush()
            time.sleep(0.25)
    monkeypatch.setattr(prometheus, "DEADLINE_S", 1.0)
    s = _Server(_handler(drip))
    try:
        r = CliRunner().invoke(app, ["calibrate", "acceptance", s.url])
        assert r.exit_code == 2 and "did not finish its answer within 1 s" in r.output
        assert "Traceback" not in r.output
    finally:
        s.close()


@pytest.mark.parametrize("pos", ["²", "0x1", "-1", "1.5", "", "١"])
def test_non_ascii_integer_positions_are_one_line(tmp_path, pos):
    before, _ = _scrapes()
    bad = before.replace('position="2"', f'position="{pos}"')
    f = tmp_path / "m.txt"
    f.write_text(bad)
    with pytest.raises(TraceError, match="integer position label"):
        read_trace(f)


def test_a_baseline_taken_after_the_trace_is_ordered_by_its_counters(tmp_path):
    before, after = _scrapes()
    (tmp_path / "before.txt").write_text(before)
    (tmp_path / "after.txt").write_text(after)
    right = read_trace(tmp_path / "after.txt", baseline=tmp_path / "before.txt")
    swapped = read_trace(tmp_path / "before.txt", baseline=tmp_path / "after.txt")
    assert right.n_drafts == swapped.n_drafts == 3000  # the fixture's after − before
    assert list(swapped.reached) == list(right.reached) and list(swapped.accepted) == list(right.accepted)
    assert not any("restarted" in n for n in swapped.notes)
    assert any("baseline scrape is the later one" in n for n in swapped.notes)


def test_a_real_restart_between_baseline_and_trace_is_still_detected(tmp_path):
    before, after = _scrapes()
    created = "vllm:spec_decode_num_drafts_created{engine=\"0\"} {}\n"
    (tmp_path / "b.txt").write_text(after + created.replace("{}", "100.0"))
    (tmp_path / "t.txt").write_text(before + created.replace("{}", "200.0"))
    d = read_trace(tmp_path / "t.txt", baseline=tmp_path / "b.txt")
    assert any("restarted" in n for n in d.notes) and d.n_drafts == 900
