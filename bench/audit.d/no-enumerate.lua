-- bench/audit (b): the full checks, STARTTLS included, without the TLS
-- offer's enumeration (about 13 more handshakes per address), so that one
-- address session is one TLS handshake and can be set against s_time's.
return { name = "bench-no-enumerate", probe = { tls = { enumerate = false } } }
