#!/usr/bin/env python3
"""split_replies.py READY_FILE SECONDS - an SMTP-ish server on 127.0.0.1
that writes every reply in two pieces with Nagle on (as Postfix does after
STARTTLS: session tickets, then the reply), for tests/spec/delayed_ack_spec.lua.
Writes its port to READY_FILE; one client; exits after SECONDS at most."""
import socket, sys, time

ready, limit = sys.argv[1], float(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
srv.settimeout(limit)
with open(ready + ".tmp", "w") as f:
    f.write("%d\n" % srv.getsockname()[1])
import os
os.rename(ready + ".tmp", ready)
c, _ = srv.accept()
c.settimeout(limit)
# Nagle stays on (no TCP_NODELAY): a second small write waits for the ACK
# of the first
c.sendall(b"220 split.test\r\n")
buf = b""
end = time.time() + limit
while time.time() < end:
    data = c.recv(4096)
    if not data:
        break
    buf += data
    while b"\r\n" in buf:
        line, buf = buf.split(b"\r\n", 1)
        if line.upper() == b"QUIT":
            c.sendall(b"221 bye\r\n")
            c.close()
            sys.exit(0)
        c.send(b"250-first piece\r\n")
        time.sleep(0.002)  # two segments, not one
        c.send(b"250 second piece\r\n")
