"""A local stand-in for Google's OAuth token endpoint, for benchmarking gcloud offline.

``POST /token`` (any body: a JWT-bearer assertion from a service-account key,
or a refresh-token grant) answers ``{"access_token": TOKEN, "expires_in":
3600, "token_type": "Bearer"}``; ``GET /count`` answers how many token
requests were served, so the benchmark can show that the timed gcloud calls
used gcloud's cache and never reached the endpoint.

Usage: python3 fake_google_token.py --token TOKEN [--port 0]
Prints the port it listens on (one line), then serves until killed. Stdlib only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fake-google-token/1"
    token = ""
    count = 0
    lock = threading.Lock()

    def _send(self, code: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] != "/token":
            self._send(404, {"error": "not_found"})
            return
        with _Handler.lock:
            _Handler.count += 1
        self._send(200, {"access_token": _Handler.token, "expires_in": 3600, "token_type": "Bearer"})

    def do_GET(self) -> None:
        if self.path == "/count":
            self._send(200, {"count": _Handler.count})
        else:
            self._send(404, {"error": "not_found"})

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--token", required=True, help="the access token to hand out")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    args = ap.parse_args()
    _Handler.token = args.token
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
