#!/usr/bin/env python3
"""https_policy.py - a scripted HTTPS server on 127.0.0.1 for the MTA-STS
specs: the faults no real policy host is configured to produce.

The Host header "mta-sts.<mode>.test" picks what /.well-known/mta-sts.txt
answers (any other path: 404):

  ok        enforce, mx: mx.test            testing   testing, mx: mx.test
  other     enforce, mx: other.test         wild      enforce, mx: *.test
  none      mode none                       html      ok's policy as text/html
  redirect  301 to https://elsewhere.test/  notfound  404
  big       200 with 100000 bytes           drip      one byte a second, forever
  notutf8   a policy with a \\xff byte       dup       mode twice
  unknown   an extra key "colour: blue"     garbage   random binary bytes
  badmax    max_age 99999999999             badmx     mx: *.*.test
  noversion no version line                 crlf      ok's policy with CRLF line ends
  flood     200 without Content-Length, 200000 bytes until the connection closes

usage: https_policy.py READY_FILE CERT KEY [LIFETIME_SECONDS]
Binds an ephemeral port, writes it to READY_FILE, exits after LIFETIME
(default 60 s) so that it can never linger.
"""
import http.server
import os
import ssl
import sys
import threading
import time

POLICY = "version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n"
BODIES = {
    "ok": POLICY % ("enforce", "mx.test"),
    "testing": POLICY % ("testing", "mx.test"),
    "other": POLICY % ("enforce", "other.test"),
    "wild": POLICY % ("enforce", "*.test"),
    "none": "version: STSv1\nmode: none\nmax_age: 86400\n",
    "html": POLICY % ("enforce", "mx.test"),
    "big": "version: STSv1\nmode: enforce\n" + "mx: mx.test\n" * 8400,
    "notutf8": "version: STSv1\nmode: enforce\nmx: mx.test\nmax_age: 86400\ncomment: caf\xff\n",
    "dup": "version: STSv1\nmode: enforce\nmode: testing\nmx: mx.test\nmax_age: 86400\n",
    "unknown": POLICY % ("enforce", "mx.test") + "colour: blue\n",
    "badmax": "version: STSv1\nmode: enforce\nmx: mx.test\nmax_age: 99999999999\n",
    "badmx": POLICY % ("enforce", "*.*.test"),
    "noversion": "mode: enforce\nmx: mx.test\nmax_age: 86400\n",
    "crlf": (POLICY % ("enforce", "mx.test")).replace("\n", "\r\n"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, ctype="text/plain"):
        data = body.encode("latin-1") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        parts = host.split(".")
        mode = parts[1] if len(parts) == 3 and parts[0] == "mta-sts" else ""
        if self.path != "/.well-known/mta-sts.txt" or mode == "notfound":
            return self.send_body(404, "not found\n")
        if mode == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://elsewhere.test/.well-known/mta-sts.txt")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "120")  # under the cap: only the clock stops it
            self.end_headers()
            try:
                for _ in range(120):
                    self.wfile.write(b"v")
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
            return
        if mode == "flood":
            # no length announced: only the reader's own cap can stop it
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for _ in range(200):
                    self.wfile.write(b"mx: mx.test\n" * 85)
            except OSError:
                pass
            return
        if mode == "garbage":
            return self.send_body(200, os.urandom(300))
        if mode not in BODIES:
            return self.send_body(404, "unknown mode\n")
        return self.send_body(200, BODIES[mode], "text/html" if mode == "html" else "text/plain")


def main():
    ready, cert, key = sys.argv[1:4]
    lifetime = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, ready)
    threading.Timer(lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
