"""`calibrate acceptance` on a live /metrics URL (served here by a local HTTP server), a baseline
scrape, and server restarts between scrapes: detected from process_start_time_seconds, a counter's
_created time, a falling counter or a changed γ — and never subtracted across."""
import http.server
import json
import threading

import pytest
from typer.testing import CliRunner

from specperf.calibration.traces import read_trace
from specperf.cli.main import app

runner = CliRunner()


def scrape(drafts, per_pos, start=1.7e9, created=1.7e9, model="m"):
    lab = f'engine="0",model_name="{model}"'
    lines = ["# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}",
             "# TYPE vllm:spec_decode_num_drafts_total counter",
             f"vllm:spec_decode_num_drafts_total{{{lab}}} {drafts}",
             f"vllm:spec_decode_num_drafts_created{{{lab}}} {created}",
             f"vllm:spec_decode_num_draft_tokens_total{{{lab}}} {drafts * len(per_pos)}",
             f"vllm:spec_decode_num_accepted_tokens_total{{{lab}}} {sum(per_pos)}"]
    lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{lab},position="{i}"}} {c}'
              for i, c in enumerate(per_pos)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def endpoint():
    """A /metrics server on 127.0.0.1 whose body the test sets; yields (url, set_body)."""
    body = {"text": ""}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            data = body["text"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/metrics", lambda t: body.update(text=t)
    srv.shutdown()
    srv.server_close()


def test_live_url_and_baseline(endpoint, tmp_path):
    url, set_body = endpoint
    set_body(scrape(1000, [600, 300]))
    d = read_trace(url)
    assert d.n_drafts == 1000 and d.accepted.tolist() == [600, 300] and d.extra["restarts"] == 0
    base = tmp_path / "before.txt"
    base.write_text(scrape(400, [300, 200]))
    w = read_trace(url, baseline=base)
    assert w.n_drafts == 600 and w.accepted.tolist() == [300, 100] and w.extra["scrapes_used"] == 2
    r = runner.invoke(app, ["calibrate", "acceptance", url, "--baseline", str(base), "--json"])
    assert r.exit_code == 0, r.output
    g2 = [t for t in json.loads(r.stdout)["tokens_per_iteration"] if t["gamma"] == 2][0]
    assert g2["observed"] is None or g2["observed"] == pytest.approx(1 + 400 / 600)
    assert g2["per_position"] == pytest.approx(1 + 400 / 600)


@pytest.mark.parametrize("after, why", [
    (scrape(5000, [3000, 1500], created=1.8e9), "_created changed"),  # nothing fell: only _created tells
    (scrape(5000, [3000, 1500], start=1.8e9, created=1.7e9), "process_start_time_seconds changed"),
    (scrape(500, [300, 150], start=1.7e9, created=1.7e9), "fell from"),
    (scrape(5000, [3000, 1500, 700]), "changed from 2 to 3 positions"),
])
def test_restart_between_scrapes_is_detected_not_subtracted(after, why, tmp_path):
    f = tmp_path / "two.txt"
    f.write_text(scrape(1000, [600, 300]) + after)
    d = read_trace(f)
    assert d.extra["restarts"] == 1 and any(why in n for n in d.notes)
    n_after = int(after.split("drafts_total{")[1].split("} ")[1].split()[0].split(".")[0])
    assert d.n_drafts == n_after  # the counts since the restart, not after − before


def test_restart_then_more_scrapes_uses_the_segment_after_it(tmp_path):
    f = tmp_path / "three.txt"
    f.write_text(scrape(1000, [600, 300]) + scrape(200, [100, 50], created=1.8e9)
                 + scrape(1200, [700, 350], created=1.8e9))
    d = read_trace(f)
    assert d.n_drafts == 1000 and d.accepted.tolist() == [600, 300] and d.extra["scrapes_used"] == 2


def test_unreachable_or_wrong_url_is_one_line_exit_2(endpoint):
    url, set_body = endpoint
    set_body(scrape(1000, [600, 300]))
    for bad, msg in [(url.replace("/metrics", "/nope"), "HTTP 404"),
                     ("http://127.0.0.1:1/metrics", "cannot read the endpoint")]:
        r = runner.invoke(app, ["calibrate", "acceptance", bad])
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    set_body("")
    r = runner.invoke(app, ["calibrate", "acceptance", url])
    assert r.exit_code == 2 and "answered nothing" in r.output
