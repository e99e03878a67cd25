"""How long does verifying N distinct keys take against a local fake API?

    PYTHONPATH=$PWD python bench/verify_bench.py --keys 1000 --delay 0.02 --concurrency 1 4 8 16 32

The server (a ThreadingHTTPServer on 127.0.0.1) sleeps ``--delay`` seconds per request to stand in
for network latency and answers 200 or 401 by key. Keys are made at run time.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kascan.model import Finding, Secret
from kascan.verify import verify_findings

PREFIX = "ka_" + "live_"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8])
    args = ap.parse_args()

    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per reply

        def log_message(self, format: str, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                count[0] += 1
            if args.delay:
                time.sleep(args.delay)
            live = self.headers.get("Authorization", "")[-1] in string.ascii_letters
            body = json.dumps({"id": "org_1", "name": "Bench"} if live else {}).encode()
            self.send_response(200 if live else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rng = random.Random(0)
    alnum = string.ascii_letters + string.digits
    for conc in args.concurrency:
        keys = [PREFIX + "".join(rng.choices(alnum, k=32)) for _ in range(args.keys)]
        findings = [
            Finding("kubeadapt-api-key", f"f{i}", 1, 1, Secret(k)) for i, k in enumerate(keys)
        ]
        count[0] = 0
        started = time.perf_counter()
        out = list(verify_findings(findings, url, concurrency=conc, budget=3600))
        elapsed = time.perf_counter() - started
        statuses = {s: sum(f.verification.status == s for f in out) for s in ("live", "inactive")}
        print(
            f"keys={args.keys} delay={args.delay * 1000:.0f}ms concurrency={conc}: "
            f"{elapsed:.2f}s ({args.keys / elapsed:.0f} keys/s), requests={count[0]}, {statuses}"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
