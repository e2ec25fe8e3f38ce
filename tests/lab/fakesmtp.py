#!/usr/bin/python3
"""Scripted SMTP servers for the mxlab test world (stdlib only).

They make, on purpose, the faults no real MTA makes: see MODES. One process
serves one mode on one address; every connection gets its own thread. Each
process caps its concurrent connections (--max-conn) and every connection's
lifetime (--life, 10 minutes), so a client that never closes cannot pin it.

  fakesmtp.py --mode drip --listen 203.0.113.35 --port 25 --pidfile drip.pid \
              --cert drip.chain.pem --key drip.key
"""
import argparse
import os
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import warnings

MODES = {
    "slow-greeting": "220 only after 35 s",
    "tls-broken": "offers STARTTLS, answers 220, then sends garbage instead of a TLS handshake",
    "starttls-inject": "sends '250 injected' in plaintext right after '220 Ready to start TLS'",
    "starttls-exec": "runs plaintext commands pipelined after STARTTLS and answers them inside TLS (CVE-2011-0411 class)",
    "endless": "'220-' continuation lines forever",
    "drip": "sends its 220 greeting one byte per second",
    "garbage": "random binary bytes (with NUL) instead of a greeting",
    "greet-421": "greets with 421 and closes",
    "greet-554": "greets with 554 and then answers 503 to all but QUIT (RFC 5321 3.1)",
    "greet-nohost": "greets with '220 ESMTP' (no host name)",
    "tls10": "normal server whose STARTTLS speaks only TLS 1.0/1.1",
    "double-greeting": "two 220 greetings in one write (a proxy banner, then the MTA's), then a normal dialog",
    "early-reply": "offers no PIPELINING and answers MAIL with '250' and, in the same write, a '554' for the RCPT not sent yet",
    "greet-554-listed": "greets with 554 naming a DNSBL (blocked using zen.spamhaus.org), then 503 to all but QUIT",
    "long-greeting": "a 220 greeting whose one line is 700 KiB long, then a normal dialog",
    "ehlo-flood": "answers EHLO with 150 '250-' lines (past any client's line cap)",
    "starttls-sync": "a command pipelined after STARTTLS gets '554 5.5.0 Error: SMTP protocol synchronization' and the "
                     "connection is closed (Postfix 3.9's smtpd_forbid_unauth_pipelining); a STARTTLS alone starts TLS",
}
LONG_GREETING = 700 * 1024  # octets of text in the long-greeting line: past 512 and 4096, below 1 MiB
IDLE = 60            # seconds to wait for a client command
SLOW_GREETING = 35   # seconds before slow-greeting says 220


class Session:
    def __init__(self, sock, srv):
        self.sock, self.srv, self.o = sock, srv, srv.opts
        self.host = self.o.hostname
        self.buf = b""
        self.tls = False
        self.deadline = time.monotonic() + self.o.life

    # ------------------------------------------------------------ plumbing
    def left(self):
        return self.deadline - time.monotonic()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self, *lines):
        """Send a (multi-line) reply: reply('250-a', '250 b')."""
        self.send("".join(line + "\r\n" for line in lines))

    def readline(self):
        """One line (without CRLF) or None on EOF, timeout or lifetime end."""
        while b"\n" not in self.buf:
            if self.left() <= 0 or len(self.buf) > 4096:
                return None
            self.sock.settimeout(min(IDLE, self.left()))
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def pending(self):
        """Whether the client sent more than the command just read (as
        Postfix asks: its own buffer, then the kernel's)."""
        if self.buf:
            return True
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def sleep(self, secs):
        time.sleep(max(0, min(secs, self.left())))

    # ------------------------------------------------------------ behaviour
    def run(self):
        m = self.o.mode
        if m == "slow-greeting":
            self.sleep(SLOW_GREETING)
            if self.left() <= 0:
                return
        elif m == "endless":
            return self.endless()
        elif m == "garbage":
            return self.garbage()
        elif m == "drip":
            # about 70 bytes: longer than any sane greeting deadline below 60 s
            for b in f"220-{self.host} ESMTP\r\n220 one byte per second, patience\r\n".encode():
                self.send(bytes([b]))
                self.sleep(1)
            return self.dialog()
        elif m == "greet-421":
            return self.reply(f"421 4.3.2 {self.host} Service not available, closing transmission channel")
        elif m in ("greet-554", "greet-554-listed"):
            if m == "greet-554":
                self.reply(f"554 5.3.2 {self.host} No SMTP service here")
            else:
                self.reply(f"554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org")
            while (line := self.readline()) is not None:
                if line.upper().startswith("QUIT"):
                    return self.reply("221 2.0.0 Bye")
                self.reply("503 5.5.1 Bad sequence of commands: no SMTP service here")
            return
        if m == "greet-nohost":
            self.reply("220 ESMTP")
        elif m == "double-greeting":
            # one write: the client finds the second one before its EHLO
            self.send(f"220 proxy.lab.test ESMTP front-end\r\n220 {self.host} ESMTP mxlab-fakesmtp ({m})\r\n")
        elif m == "long-greeting":
            self.send(f"220 {self.host} ESMTP " + "x" * LONG_GREETING + "\r\n")
        else:
            self.reply(f"220 {self.host} ESMTP mxlab-fakesmtp ({m})")
        self.dialog()

    def endless(self):
        n = 0
        while self.left() > 0:
            # Batches with a pause: fast enough to hit any client bound, but a
            # reader that never stops cannot make us burn a core.
            lines = "".join(f"220-{self.host} line {n + i} of a greeting that never ends\r\n"
                            for i in range(50))
            self.send(lines)
            n += 50
            self.sleep(0.05)

    def garbage(self):
        self.send(b"\x00\xff\xfe\r\n" + os.urandom(4092))
        while self.left() > 0:
            self.sleep(1)
            self.send(os.urandom(1024))

    def ehlo_lines(self):
        ext = ["PIPELINING", "SIZE 10240000", "8BITMIME"]
        if self.o.mode == "early-reply":
            # a client that pipelines has sent RCPT by then: the reply
            # ahead of its command is only seen by one that waits
            ext.remove("PIPELINING")
        if not self.tls:
            ext.insert(2, "STARTTLS")
        lines = [f"250-{self.host}"] + [f"250-{e}" for e in ext]
        lines[-1] = "250 " + lines[-1][4:]
        return lines

    def dialog(self):
        """A small, well-behaved SMTP server (it never accepts mail)."""
        while (line := self.readline()) is not None:
            cmd = line[:4].upper()
            if cmd == "EHLO" and self.o.mode == "ehlo-flood":
                self.reply(f"250-{self.host}", *[f"250-X-FLOOD-{i}" for i in range(150)], "250 8BITMIME")
            elif cmd == "EHLO":
                self.reply(*self.ehlo_lines())
            elif cmd == "HELO":
                self.reply(f"250 {self.host}")
            elif cmd == "MAIL" and self.o.mode == "early-reply":
                # the reply to a RCPT that has not been sent yet rides along
                self.send("250 2.1.0 Ok\r\n554 5.7.1 early: Relay access denied\r\n")
            elif cmd == "MAIL":
                self.reply("250 2.1.0 Ok")
            elif cmd == "RCPT":
                addr = line.split(":", 1)[-1].strip().strip("<>").lower()
                if addr.endswith(".lab.test") or addr.endswith("@lab.test"):
                    self.reply("250 2.1.5 Ok")
                else:
                    self.reply("550 5.7.1 Relay access denied")
            elif cmd == "DATA":
                self.reply("554 5.7.0 mxlab scripted servers take no mail")
            elif cmd in ("RSET", "NOOP"):
                self.reply("250 2.0.0 Ok")
            elif cmd == "QUIT":
                return self.reply("221 2.0.0 Bye")
            elif cmd == "STAR" and line.upper() == "STARTTLS" and not self.tls:
                if not self.starttls():
                    return
            else:
                self.reply("502 5.5.2 Error: command not recognized")

    def starttls(self):
        """Returns False when the connection is finished."""
        m = self.o.mode
        if m == "tls-broken":
            self.reply("220 2.0.0 Ready to start TLS")
            # wait for the ClientHello, so that this is a failed handshake
            # and not plaintext injected before it
            try:
                self.sock.settimeout(min(IDLE, self.left()))
                self.sock.recv(4096)
            except OSError:
                return False
            self.send(b"this is not a TLS handshake\r\n" + os.urandom(64))
            return False
        if m == "starttls-sync" and self.pending():
            self.reply("554 5.5.0 Error: SMTP protocol synchronization")
            return False
        if m == "starttls-inject":
            # Both lines in one send(): a client sees bytes after the 220.
            self.send("220 2.0.0 Ready to start TLS\r\n250 injected\r\n")
        else:
            self.reply("220 2.0.0 Ready to start TLS")
        if m != "starttls-exec":
            self.buf = b""  # the fix for CVE-2011-0411: drop pipelined plaintext
        try:
            self.sock.settimeout(min(IDLE, self.left()))
            self.sock = self.srv.tls_ctx.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError):
            return False
        self.tls = True
        return True


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        if not srv.slots.acquire(blocking=False):
            return  # over --max-conn: close at once
        try:
            Session(self.request, srv).run()
        except (OSError, ssl.SSLError):
            pass  # the client went away
        finally:
            srv.slots.release()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


def tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if opts.mode == "tls10":
        # OpenSSL 3.0 allows TLS < 1.2 only at security level 0. (Spare mode:
        # the lab's tls10 server is a Postfix; this one is for ad-hoc tests.)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # "TLSv1 is deprecated": that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    if opts.cert:
        ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", required=True, choices=sorted(MODES))
    ap.add_argument("--listen", required=True, help="IPv4 or IPv6 address")
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--hostname", help="name in greetings (default: MODE.mx.lab.test)")
    ap.add_argument("--cert", help="PEM chain (leaf first) for STARTTLS")
    ap.add_argument("--key", help="PEM key for --cert")
    ap.add_argument("--pidfile")
    ap.add_argument("--max-conn", type=int, default=256)
    ap.add_argument("--life", type=float, default=600, help="max seconds per connection")
    opts = ap.parse_args()
    opts.hostname = opts.hostname or f"{opts.mode}.mx.lab.test"

    if ":" in opts.listen:
        Server.address_family = socket.AF_INET6
    srv = Server((opts.listen, opts.port), Handler)
    srv.opts, srv.slots, srv.tls_ctx = opts, threading.BoundedSemaphore(opts.max_conn), tls_context(opts)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if opts.pidfile:  # written once we listen: `up` waits for it
        with open(opts.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(opts.pidfile + ".tmp", opts.pidfile)
    try:
        srv.serve_forever(poll_interval=0.5)
    finally:
        if opts.pidfile:
            try:
                os.unlink(opts.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    main()
