# shellcheck shell=bash
# The internet-shaped scale world (sourced by up; needs lib.sh, certs.sh and
# dns.sh first): `up --scale N --shape internet [--tail M]`.
#
# Real portfolios have a few big mail providers and a long tail of servers
# that each serve one domain.  Zone inet.lab.test holds
#   * N provider-like domains dNNNNNNN.inet.lab.test: MX on one of
#     INET_PROVIDERS provider hosts pNN.mx.inet.lab.test, chosen Zipf-like
#     (weight 1/rank: p01 serves about a fifth of them); every third also has
#     an MX 20 on the next provider; every 20th (5 %) instead points at one of
#     five dead providers (dead-pN.mx.inet.lab.test, dropped addresses);
#   * M tail domains tNNNNNNN.inet.lab.test (default M = N / 10), each with
#     its own MX host hNNNNNNN.mx.inet.lab.test on its own IPv6 address; every
#     fourth has a second, also distinct, MX 20 host gNNNNNNN; every 20th
#     (5 %) has its only host on a dropped address.  No sharing is possible.
# Every MX host has an AAAA record only, in 2001:db8:100::/40:
#   2001:db8:100::/48   providers (2001:db8:100::1:K)
#   2001:db8:101::/48   tail hosts (2001:db8:101::X:Y, X:Y = the index j)
#   2001:db8:102::/48   second tail hosts
#   2001:db8:1ff::/48   dropped (dead providers, dropped tail hosts)
# The whole /40 is routed from $NS over veth t0 into namespace $INET_NS,
# where a local route (AnyIP) makes 2001:db8:100::/46 local, so ONE Postfix
# listening on [::]:25 answers every live host, with a wildcard certificate
# for *.mx.inet.lab.test.  $INET_NS does not forward, so packets to
# 2001:db8:1ff::/48 are dropped there silently: connect() times out.
# A separate namespace because a wildcard [::]:25 cannot be bound next to
# the lab's own Postfix instances on [2001:db8::14]:25 and [2001:db8::15]:25.
#
# Files: $STATE/scale-domains.txt (all, provider-like first), and
# $STATE/scale-provider-domains.txt, $STATE/scale-tail-domains.txt,
# $STATE/scale-expect.txt (counts the benches check their results against).

INET_NS=${NS}-inet
INET_PROVIDERS=${MXLAB_INET_PROVIDERS:-50}

# gen_inet_zone N M SERIAL: the zone and the lists, in one awk pass (a million
# domains in a few seconds; no process per record).
gen_inet_zone() {
  local n=$1 m=$2 serial=$3 z=$STATE/dns/inet.lab.test.zone
  awk -v n="$n" -v m="$m" -v np="$INET_PROVIDERS" -v serial="$serial" \
      -v zone="$z" -v all="$STATE/scale-domains.txt" -v prov="$STATE/scale-provider-domains.txt" \
      -v tail="$STATE/scale-tail-domains.txt" -v expect="$STATE/scale-expect.txt" '
    function addr(prefix, j) { return sprintf("%s::%x:%x", prefix, int(j / 65536), j % 65536) }
    BEGIN {
      printf "$ORIGIN inet.lab.test.\n$TTL 300\n" >zone
      printf "@ SOA ns.lab.test. hostmaster.lab.test. %s 3600 600 86400 60\n@ NS ns.lab.test.\n", serial >zone
      # Zipf-like: provider k has weight 1/k; cum[k] is the cumulative share
      for (k = 1; k <= np; k++) { h += 1 / k; cum[k] = h }
      for (k = 1; k <= np; k++) {
        cum[k] /= h
        printf "p%02d.mx AAAA 2001:db8:100::1:%x\n", k, k >zone
      }
      for (k = 1; k <= 5; k++) printf "dead-p%d.mx AAAA 2001:db8:1ff:ffff::%x\n", k, k >zone
      dead = 0; two = 0
      for (i = 1; i <= n; i++) {
        d = sprintf("d%07d", i)
        print d ".inet.lab.test" >all; print d ".inet.lab.test" >prov
        if (i % 20 == 0) { printf "%s MX 10 dead-p%d.mx\n", d, (i / 20) % 5 + 1 >zone; dead++; continue }
        # a deterministic uniform number in [0, 1) from i (Knuth multiplicative hash)
        u = ((i * 2654435761) % 4294967296) / 4294967296
        for (k = 1; k < np && cum[k] <= u; k++) ;
        printf "%s MX 10 p%02d.mx\n", d, k >zone
        if (i % 3 == 0) { printf "%s MX 20 p%02d.mx\n", d, k % np + 1 >zone; two++ }
      }
      tdead = 0; ttwo = 0; hosts = 0
      for (j = 1; j <= m; j++) {
        t = sprintf("t%07d", j)
        print t ".inet.lab.test" >all; print t ".inet.lab.test" >tail
        printf "%s MX 10 h%07d.mx\n", t, j >zone
        hosts++
        if (j % 20 == 0) { printf "h%07d.mx AAAA %s\n", j, addr("2001:db8:1ff", j) >zone; tdead++; continue }
        printf "h%07d.mx AAAA %s\n", j, addr("2001:db8:101", j) >zone
        if (j % 4 == 0) {
          printf "%s MX 20 g%07d.mx\ng%07d.mx AAAA %s\n", t, j, j, addr("2001:db8:102", j) >zone
          ttwo++; hosts++
        }
      }
      printf "providers=%d provider_domains=%d provider_dead=%d provider_two_mx=%d\n", np, n, dead, two >expect
      printf "tail_domains=%d tail_dead=%d tail_two_mx=%d tail_hosts=%d\n", m, tdead, ttwo, hosts >expect
    }'
}

# The namespace with the one Postfix for every inet host, and the routes.
start_inet() {
  ip netns add "$INET_NS"
  {
    echo "link set lo up"
    echo "link add t0 type veth peer name t1 netns $INET_NS"
    echo "link set t0 up"
    echo "addr add 2001:db8:ffff::1/64 dev t0 nodad"
    echo "route add 2001:db8:100::/40 via 2001:db8:ffff::2 dev t0"
  } | ip -n "$NS" -batch -
  {
    echo "link set lo up"
    echo "link set t1 up"
    echo "addr add 2001:db8:ffff::2/64 dev t1 nodad"
    echo "route add local 2001:db8:100::/46 dev lo"
    echo "route add 2001:db8::/32 via 2001:db8:ffff::1 dev t1"
  } | ip -n "$INET_NS" -batch -
  ip netns exec "$INET_NS" sysctl -qw net.ipv6.conf.all.forwarding=0

  # One Postfix, the lab's "good" configuration, on every address of the
  # namespace.  Its process limit is raised: it is the whole long tail.
  local d=$STATE/postfix/inet
  mkdir -p "$d/conf" "$d/queue" "$d/data"
  chown postfix "$d/data"
  pf_main_cf inet - 2001:db8:100::1:1 mx.inet.lab.test inet good |
    sed -e 's/^inet_interfaces = .*/inet_interfaces = all/' >"$d/conf/main.cf"
  printf 'default_process_limit = %s\n' "${MXLAB_INET_PROCS:-200}" >>"$d/conf/main.cf"
  pf_master_cf >"$d/conf/master.cf"
  ip netns exec "$INET_NS" postfix -c "$d/conf" start >"$d/start.log" 2>&1 ||
    { say "postfix inet failed to start:"; cat "$d/start.log" >&2; return 1; }
  # ready when a provider and a tail address both greet
  local i
  for i in $(seq 40); do
    nsx "$PY" - <<'EOF' && return 0
import socket, sys
for a in ("2001:db8:100::1:1", "2001:db8:101::0:1"):
    try:
        with socket.create_connection((a, 25), timeout=2) as s:
            if not s.recv(512).startswith(b"220 "): sys.exit(1)
            s.sendall(b"QUIT\r\n")
    except OSError:
        sys.exit(1)
EOF
    sleep 0.5
  done
  say "inet postfix not ready after 20 s"
  return 1
}

stop_inet() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$INET_NS" || return 0
  [ -d "$STATE/postfix/inet" ] && kill_pidfiles "$STATE/postfix/inet/queue/pid/master.pid"
  local i left
  for i in $(seq 30); do [ -z "$(ip netns pids "$INET_NS" 2>/dev/null)" ] && break; sleep 0.1; done
  left=$(ip netns pids "$INET_NS" 2>/dev/null | tr '\n' ' ')
  [ -n "$left" ] && { kill -TERM $left 2>/dev/null; sleep 0.5; kill -KILL $(ip netns pids "$INET_NS" 2>/dev/null) 2>/dev/null; }
  ip netns del "$INET_NS"
}
