"""Hit counter for the rcompose web + redis example.

Standard library HTTP server plus the `redis` client (Debian's python3-redis,
present in the test bed's python:3 image). Every GET / increments a counter in
redis; GET /health answers without counting, for the healthcheck.
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
PORT = int(os.environ.get("PORT", "8000"))

cache = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2, socket_timeout=2)


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, "ok\n")
            return
        if self.path != "/":
            self.reply(404, "not found\n")
            return
        try:
            hits = cache.incr("hits")
        except redis.RedisError as err:
            self.reply(503, f"redis at {REDIS_HOST}:{REDIS_PORT} is unavailable: {err}\n")
            return
        self.reply(200, f"Hello from rcompose! I have been seen {hits} times.\n")


def main():
    # As PID 1 in a container, SIGTERM is ignored unless handled: exit promptly on stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(f"listening on :{PORT}, counting in redis at {REDIS_HOST}:{REDIS_PORT}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
