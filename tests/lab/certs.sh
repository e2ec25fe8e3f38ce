# shellcheck shell=bash
# Makes the lab PKI under $STATE (sourced by up; needs lib.sh first).
#
#   $STATE/ca/ca.pem            trust anchor for clients (--ca-file): the root only,
#                               so a server that forgets its intermediate fails
#   $STATE/ca/intermediate.pem  the intermediate (servers send it in their chain)
#   $STATE/certs/NAME.key       leaf key;   NAME.crt  leaf only
#   $STATE/certs/NAME.chain.pem leaf + intermediate (for fakesmtp.py)
#   $STATE/certs/NAME.postfix.pem key + leaf + intermediate (smtpd_tls_chain_files)
#
# EC P-256 keys: key generation is instant, which keeps `up` fast.
# Leaves are issued with `openssl ca` because OpenSSL 3.0's `x509 -req` cannot
# set a notBefore/notAfter in the past (needed for the expired leaf).

make_certs() {
  local ca=$STATE/ca c=$STATE/certs
  rm -rf "$ca" "$c"; mkdir -p "$ca/db/new" "$c"
  : >"$ca/db/index.txt"; echo 1000 >"$ca/db/serial"
  cat >"$ca/openssl.cnf" <<EOF
[ca]
default_ca = lab
[lab]
database = $ca/db/index.txt
new_certs_dir = $ca/db/new
serial = $ca/db/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[int_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = \$ENV::SAN
EOF
  local cnf=$ca/openssl.cnf ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  local q=(-batch -notext -config "$cnf")
  export SAN=DNS:unused   # openssl parses $ENV::SAN in every command that reads the config

  # Root (10 years) and intermediate (5 years).
  openssl req -x509 "${ec[@]}" -config "$cnf" -keyout "$ca/root.key" -out "$ca/ca.pem" \
    -days 3650 -subj "/O=mxlab/CN=mxlab Test Root CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  openssl req -new "${ec[@]}" -config "$cnf" -keyout "$ca/int.key" -out "$ca/int.csr" \
    -subj "/O=mxlab/CN=mxlab Test Intermediate CA" 2>/dev/null
  openssl ca "${q[@]}" -cert "$ca/ca.pem" -keyfile "$ca/root.key" -extensions int_ext \
    -days 1825 -in "$ca/int.csr" -out "$ca/intermediate.pem" 2>/dev/null

  local now past1 past2 soon year
  past1=$(date -u -d '-400 days' +%Y%m%d%H%M%SZ)
  past2=$(date -u -d '-30 days' +%Y%m%d%H%M%SZ)
  now=$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)
  soon=$(date -u -d '+10 days' +%Y%m%d%H%M%SZ)
  year=$(date -u -d '+365 days' +%Y%m%d%H%M%SZ)

  # leaf NAME "DNS:a,DNS:b" [startdate enddate]: issued by the intermediate.
  leaf() {
    local n=$1 san=$2 start=${3:-$now} end=${4:-$year} cn=${2%%,*}
    openssl req -new "${ec[@]}" -config "$cnf" -keyout "$c/$n.key" -out "$c/$n.csr" \
      -subj "/O=mxlab/CN=${cn#DNS:}" 2>/dev/null
    SAN=$san openssl ca "${q[@]}" -cert "$ca/intermediate.pem" -keyfile "$ca/int.key" \
      -extensions leaf_ext -startdate "$start" -enddate "$end" \
      -in "$c/$n.csr" -out "$c/$n.crt" 2>/dev/null
  }

  # leaf_rsa NAME "DNS:a,...": the same with an RSA 2048 key.
  leaf_rsa() {
    local n=$1 san=$2 cn=${2%%,*}
    openssl req -new -newkey rsa:2048 -nodes -config "$cnf" -keyout "$c/$n.key" -out "$c/$n.csr" \
      -subj "/O=mxlab/CN=${cn#DNS:}" 2>/dev/null
    SAN=$san openssl ca "${q[@]}" -cert "$ca/intermediate.pem" -keyfile "$ca/int.key" \
      -extensions leaf_ext -startdate "$now" -enddate "$year" \
      -in "$c/$n.csr" -out "$c/$n.crt" 2>/dev/null
  }

  local many='DNS:*.many-mx.lab.test'   # the 12 many-mx names point at the good servers
  # *.mx.sec.lab.test: the DNSSEC cases of dnssec.sh point at good too
  leaf good        "DNS:good.mx.lab.test,DNS:implicit.lab.test,$many,DNS:*.mx.sec.lab.test"
  leaf good2       "DNS:good2.mx.lab.test,$many"
  leaf good3       "DNS:good3.mx.lab.test,$many"
  leaf good4       "DNS:good4.mx.lab.test,$many"
  leaf dual        "DNS:dual.mx.lab.test"
  leaf ipv6-only   "DNS:ipv6-only.mx.lab.test"
  leaf open-relay  "DNS:open-relay.mx.lab.test"
  leaf greylist    "DNS:greylist.mx.lab.test"
  leaf tls10       "DNS:tls10.mx.lab.test"
  # TLS-offer servers (issue 11): an RSA leaf is needed for static-RSA and
  # DHE-RSA suites; dualcert has an ECDSA and an RSA certificate at once.
  leaf_rsa legacy       "DNS:legacy.mx.lab.test"
  leaf dualcert         "DNS:dualcert.mx.lab.test"
  leaf_rsa dualcert-rsa "DNS:dualcert.mx.lab.test"
  leaf mixed            "DNS:mixed.mx.lab.test"
  leaf no-postmaster "DNS:no-postmaster.mx.lab.test"
  leaf inet        "DNS:*.mx.inet.lab.test"                     # every host of --shape internet
  leaf wrong-name  "DNS:somebody-else.lab.test"                # valid chain, wrong name
  leaf expired     "DNS:expired.mx.lab.test" "$past1" "$past2" # ended 30 days ago
  leaf expiring    "DNS:expiring.mx.lab.test" "$now" "$soon"  # ends in 10 days
  local l s=""
  for l in "${SCRIPTED_SERVERS[@]}"; do set -- $l; s="$s,DNS:$3"; done
  leaf scripted    "${s#,}"                                     # one cert for all fakesmtp modes

  # Self-signed: not issued by the lab CA at all.
  openssl req -x509 "${ec[@]}" -config "$cnf" -keyout "$c/self-signed.key" \
    -out "$c/self-signed.crt" -days 365 -subj "/O=mxlab/CN=self-signed.mx.lab.test" \
    -addext "subjectAltName=DNS:self-signed.mx.lab.test" 2>/dev/null

  local f n
  for f in "$c"/*.crt; do
    n=${f%.crt}
    if [ "${n##*/}" = self-signed ]; then cp "$f" "$n.chain.pem"
    else cat "$f" "$ca/intermediate.pem" >"$n.chain.pem"; fi
    cat "$n.key" "$n.chain.pem" >"$n.postfix.pem"
  done
  rm -f "$c"/*.csr
  chmod 600 "$c"/*.key "$c"/*.postfix.pem "$ca"/*.key
}

# TLSA "3 1 1" (DANE-EE, SPKI, SHA-256) data for a leaf.
tlsa_311() {
  openssl x509 -in "$STATE/certs/$1.crt" -noout -pubkey |
    openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}
