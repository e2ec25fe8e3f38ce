# shellcheck shell=bash
# Shared settings and helpers for tests/lab/{up,down,selftest}. Sourced, not run.
#
# Everything the lab uses lives in a network namespace ($NS) and only uses
# loopback or documentation addresses (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32), so no packet can leave this machine.
# world.lua and README.md describe the same plan: keep the three in step.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The default names are unusual on purpose: `down` deletes the namespaces it
# names, so they must not collide with anything the machine already has.
NS=${MXLAB_NS:-mxprobe-lab}
VOID_NS=${NS}-void            # holds the peer of v0: what goes there is dropped
STATE=${MXLAB_STATE:-/tmp/mxprobe-lab}
# `up` writes one marker file per namespace it creates here; `down` deletes,
# and `up` reuses, only a namespace that has one. /run is a tmpfs like the
# /run/netns mounts themselves, so a marker never outlives a reboot.
MARK_DIR=/run/mxprobe-lab
PY=/usr/bin/python3           # Debian's python: its ssl module uses the system OpenSSL

DNS4=192.0.2.53
DNS6=2001:db8::53

# Fault addresses (see README "Address plan").
REFUSED4=203.0.113.97         # on lo, nothing listens: RST -> ECONNREFUSED
UNREACH4=203.0.113.98         # "ip route add unreachable": EHOSTUNREACH at once
DROPPED4=203.0.113.99         # routed into a veth whose peer is mute: timeout

# Postfix instances: id  ipv4  ipv6  hostname  cert  flavour
# cert: name of a leaf made by certs.sh ("-" = no TLS at all)
# flavour selects the main.cf differences in pf_main_cf() (up).
POSTFIX_SERVERS=(
  "good        192.0.2.10    -             good.mx.lab.test         good        good"
  "good2       192.0.2.11    -             good2.mx.lab.test        good2       good2"
  "good3       192.0.2.12    -             good3.mx.lab.test        good3       good"
  "good4       192.0.2.13    -             good4.mx.lab.test        good4       good"
  "dual        192.0.2.14    2001:db8::14  dual.mx.lab.test         dual        good"
  "ipv6-only   -             2001:db8::15  ipv6-only.mx.lab.test    ipv6-only   good"
  "expired     198.51.100.20 -             expired.mx.lab.test      expired     good"
  "wrong-name  198.51.100.21 -             wrong-name.mx.lab.test   wrong-name  good"
  "self-signed 198.51.100.22 -             self-signed.mx.lab.test  self-signed good"
  "no-starttls 198.51.100.23 -             no-starttls.mx.lab.test  -           good"
  "open-relay  198.51.100.24 -             open-relay.mx.lab.test   open-relay  open-relay"
  "greylist    198.51.100.25 -             greylist.mx.lab.test     greylist    greylist"
  "expiring    198.51.100.26 -             expiring.mx.lab.test     expiring    good"
  "tls10       198.51.100.27 -             tls10.mx.lab.test        tls10       tls10"
  "legacy      198.51.100.60 -             legacy.mx.lab.test       legacy      legacy"
  "dualcert    198.51.100.61 -             dualcert.mx.lab.test     dualcert    dualcert"
  "mixed-new   198.51.100.62 -             mixed.mx.lab.test        mixed       good"
  "mixed-old   198.51.100.63 -             mixed.mx.lab.test        mixed       mixed-old"
  "no-postmaster 198.51.100.28 -           no-postmaster.mx.lab.test no-postmaster no-postmaster"
)

# Scripted servers (fakesmtp.py): mode  ipv4  hostname
SCRIPTED_SERVERS=(
  "slow-greeting   203.0.113.30 slow-greeting.mx.lab.test"
  "tls-broken      203.0.113.31 tls-broken.mx.lab.test"
  "starttls-inject 203.0.113.32 starttls-inject.mx.lab.test"
  "starttls-exec   203.0.113.33 starttls-exec.mx.lab.test"
  "endless         203.0.113.34 endless.mx.lab.test"
  "drip            203.0.113.35 drip.mx.lab.test"
  "garbage         203.0.113.36 garbage.mx.lab.test"
  "greet-421       203.0.113.37 greet-421.mx.lab.test"
  "greet-554       203.0.113.38 greet-554.mx.lab.test"
  "greet-nohost    203.0.113.39 greet-nohost.mx.lab.test"
  "double-greeting 203.0.113.40 double-greeting.mx.lab.test"
  "early-reply     203.0.113.41 early-reply.mx.lab.test"
  "greet-554-listed 203.0.113.42 greet-554-listed.mx.lab.test"
  "long-greeting   203.0.113.43 long-greeting.mx.lab.test"
  "ehlo-flood      203.0.113.44 ehlo-flood.mx.lab.test"
  "starttls-sync   203.0.113.45 starttls-sync.mx.lab.test"
)

# Good servers that the --scale domains share.
SCALE_POOL=(good.mx.lab.test good2.mx.lab.test good3.mx.lab.test good4.mx.lab.test)

nsx() { ip netns exec "$NS" "$@"; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
ns_marked() { [ -f "$MARK_DIR/$1" ]; }
# Mark a namespace as made by this lab (called right after `ip netns add`).
ns_mark() {
  mkdir -p "$MARK_DIR"
  printf 'made by tests/lab/up (pid %s, %s); tests/lab/down removes it\n' "$$" "$(date -u +%FT%TZ)" \
    >"$MARK_DIR/$1"
}
# Fail (return 1, with a message) when a namespace exists that this lab did not
# make: it belongs to someone else, and neither `up` nor `down` may touch it.
ns_guard() {
  local ns
  for ns in "$@"; do
    if ns_exists "$ns" && ! ns_marked "$ns"; then
      say "network namespace '$ns' exists but was not created by tests/lab/up (no $MARK_DIR/$ns): refusing to use or delete it; set MXLAB_NS to another name"
      return 1
    fi
  done
  return 0
}
say() { printf 'mxlab: %s\n' "$*" >&2; }

# Stop processes by PID file: TERM all, wait (bounded, 5 s) until gone, then KILL.
kill_pidfiles() {
  local f pid pids=() i
  for f in "$@"; do
    [ -s "$f" ] || continue
    pid=$(head -n1 "$f" | tr -dc 0-9)
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$f"
  done
  for i in $(seq 50); do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=; done
    [ -z "${pid:-}" ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  return 0
}

# All addresses the lab puts on the namespace's lo (IPv4 as /32, IPv6 as /128).
lab_addrs4() {
  local l
  echo "$DNS4" "$REFUSED4"
  for l in "${POSTFIX_SERVERS[@]}" "${SCRIPTED_SERVERS[@]}"; do
    set -- $l; [ "$2" = - ] || echo "$2"
  done
}
lab_addrs6() {
  local l
  echo "$DNS6"
  for l in "${POSTFIX_SERVERS[@]}"; do set -- $l; [ "$3" = - ] || echo "$3"; done
}
