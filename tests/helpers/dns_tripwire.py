#!/usr/bin/python3
"""A DNS "system resolver" that must never be asked anything (stdlib only).

tests/resolver_guard runs the unit specs in an empty network namespace
whose resolv.conf names 127.0.0.53; this listens there on UDP and TCP port
53, answers every query REFUSED at once (so nothing waits for it), and
appends one line per query to --log: the question and the spec that was
running (read from --current, which tests/helpers/current_test.lua keeps).
Exits after --life seconds (default 900) at the latest.
"""
import argparse, os, socket, struct, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--listen", default="127.0.0.53")
ap.add_argument("--log", required=True)
ap.add_argument("--current", required=True)
ap.add_argument("--ready", required=True)
ap.add_argument("--life", type=float, default=900)
a = ap.parse_args()
lock = threading.Lock()

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 52: "TLSA", 257: "CAA"}

def question(msg):
    i, labels = 12, []
    try:
        while msg[i]:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack(">H", msg[i + 1:i + 3])[0]
        return ".".join(labels) or ".", QTYPES.get(qtype, str(qtype))
    except (IndexError, struct.error):
        return "(unparsable)", "?"

def record(msg, via):
    name, qtype = question(msg)
    try:
        with open(a.current, encoding="utf-8", errors="replace") as f:
            test = f.read().strip() or "(before the first spec)"
    except OSError:
        test = "(unknown spec)"
    with lock, open(a.log, "a") as f:
        f.write(f"{qtype} {name} ({via}) during: {test}\n")

def refused(msg):
    if len(msg) < 12:
        return b""
    flags = struct.unpack(">H", msg[2:4])[0]
    flags = 0x8000 | (flags & 0x7900) | 5  # QR, opcode and RD kept, RCODE=REFUSED
    return msg[:2] + struct.pack(">H", flags) + msg[4:6] + b"\0\0\0\0\0\0" + msg[12:]

def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.listen, 53))
    while True:
        msg, peer = s.recvfrom(4096)
        record(msg, "udp")
        s.sendto(refused(msg), peer)

def tcp_conn(c):
    with c:
        c.settimeout(5)
        try:
            while True:
                hdr = c.recv(2)
                if len(hdr) < 2:
                    return
                n = struct.unpack(">H", hdr)[0]
                msg = b""
                while len(msg) < n:
                    chunk = c.recv(n - len(msg))
                    if not chunk:
                        return
                    msg += chunk
                record(msg, "tcp")
                ans = refused(msg)
                c.sendall(struct.pack(">H", len(ans)) + ans)
        except OSError:
            return

def tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.listen, 53))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

for fn in (udp, tcp):
    threading.Thread(target=fn, daemon=True).start()
time.sleep(0.2)
open(a.ready, "w").close()
time.sleep(a.life)
