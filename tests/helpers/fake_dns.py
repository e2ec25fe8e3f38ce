#!/usr/bin/env python3
"""fake_dns.py - a scripted UDP DNS responder on 127.0.0.1 for dns_spec.lua.

It answers what no real server sends.  The first label of the query name
picks the behaviour:

  silent     never answers
  truncated  header says 1 answer; the packet stops inside the record
  ptrloop    the answer's owner name is a compression pointer to itself
  rdlen      an A record whose rdlength runs past the end of the packet
  garbage    a valid question followed by bytes that are no records
  servfail   rcode SERVFAIL, no records
  ad         A 192.0.2.1 with the AD bit set
  adecho     A 192.0.2.1, AD set only when the query set AD (a validating
             resolver that says so only to clients that ask, RFC 6840 5.7)
  tlsashort  a TLSA record whose rdata is 2 bytes (malformed)
  cname      CNAME target.test. (and nothing else: the client asks again)
  slow       A 192.0.2.1 after 0.3 s (counts toward "maxout")
  dropfirst  ignores the first query for each question (a lost datagram),
             then answers A 192.0.2.1 like (other)
  stats      TXT "queries=N maxout=M": queries seen so far (stats excluded)
             and the peak of slow queries outstanding at once
  (other)    A 192.0.2.1, TTL 60

usage: fake_dns.py READY_FILE [LIFETIME_SECONDS]
Binds an ephemeral port and writes "PORT CLOSED_PORT" to READY_FILE, where
CLOSED_PORT is a UDP port that was free a moment ago (nothing listens).
Exits after LIFETIME_SECONDS (default 120) so that it can never linger.
Every answer echoes the query's id and question, since c-ares drops
answers whose question does not match.
"""
import heapq
import os
import select
import socket
import struct
import sys
import time


def parse_question(pkt):
    """-> (qid, question bytes, first label lowercased, qtype) or None"""
    if len(pkt) < 12:
        return None
    qid = pkt[:2]
    pos, labels = 12, []
    while pos < len(pkt):
        n = pkt[pos]
        if n == 0 or n & 0xC0:
            break
        labels.append(pkt[pos + 1:pos + 1 + n])
        pos += 1 + n
    if pos >= len(pkt) or pkt[pos] != 0 or pos + 5 > len(pkt):
        return None
    qtype = struct.unpack("!H", pkt[pos + 1:pos + 3])[0]
    question = pkt[12:pos + 5]
    first = labels[0].decode("ascii", "replace").lower() if labels else ""
    return qid, question, first, qtype


def header(qid, flags, an=0, ns=0, ar=0):
    return qid + struct.pack("!HHHHH", flags, 1, an, ns, ar)


RESPONSE = 0x8400  # QR, AA
A_RECORD = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])


def answer(qid, question, first, stats):
    if first == "truncated":
        return header(qid, RESPONSE, an=1) + question + b"\xc0\x0c\x00\x01\x00"
    if first == "ptrloop":
        self_off = 12 + len(question)
        ptr = struct.pack("!H", 0xC000 | self_off)
        return header(qid, RESPONSE, an=1) + question + ptr + struct.pack("!HHIH", 1, 1, 60, 4) + b"\xc0\x00\x02\x01"
    if first == "rdlen":
        return header(qid, RESPONSE, an=1) + question + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 200) + b"\xc0\x00\x02\x01"
    if first == "garbage":
        return header(qid, RESPONSE, an=3) + question + bytes(range(0x41, 0x41 + 40))
    if first == "servfail":
        return header(qid, 0x8402) + question
    if first == "cname":
        target = b"\x06target\x04test\x00"
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(target)) + target
        return header(qid, RESPONSE, an=1) + question + rr
    if first == "ad":
        return header(qid, RESPONSE | 0x0020, an=1) + question + A_RECORD
    if first == "tlsashort":
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 52, 1, 60, 2) + b"\x03\x01"
        return header(qid, RESPONSE, an=1) + question + rr
    if first == "stats":
        text = ("queries=%d maxout=%d" % (stats["queries"], stats["maxout"])).encode()
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 0, len(text) + 1) + bytes([len(text)]) + text
        return header(qid, RESPONSE, an=1) + question + rr
    return header(qid, RESPONSE, an=1) + question + A_RECORD


def main():
    ready = sys.argv[1]
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (sock.getsockname()[1], closed_port))
    os.rename(tmp, ready)

    end = time.monotonic() + lifetime
    stats = {"queries": 0, "maxout": 0}
    later = []  # heap of (due, seq, addr, packet): the slow answers
    seq = 0
    dropped = set()  # the questions of "dropfirst" queries seen once
    while True:
        now = time.monotonic()
        if now >= end:
            return
        wait = end - now
        if later:
            wait = min(wait, max(0.0, later[0][0] - now))
        readable, _, _ = select.select([sock], [], [], wait)
        if readable:
            pkt, addr = sock.recvfrom(4096)
            q = parse_question(pkt)
            if q:
                qid, question, first, _ = q
                if first != "stats":
                    stats["queries"] += 1
                if first == "slow":
                    seq += 1
                    heapq.heappush(later, (time.monotonic() + 0.3, seq, addr, answer(qid, question, first, stats)))
                    stats["maxout"] = max(stats["maxout"], len(later))
                elif first == "adecho":
                    ad = "ad" if pkt[3] & 0x20 else "noad"
                    sock.sendto(answer(qid, question, ad, stats), addr)
                elif first == "dropfirst" and question.lower() not in dropped:
                    dropped.add(question.lower())
                elif first != "silent":
                    sock.sendto(answer(qid, question, first, stats), addr)
        now = time.monotonic()
        while later and later[0][0] <= now:
            _, _, addr, pkt = heapq.heappop(later)
            sock.sendto(pkt, addr)


if __name__ == "__main__":
    main()
