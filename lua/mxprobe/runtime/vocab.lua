--- mxprobe.runtime.vocab: the project's shared vocabularies, one table each,
-- so that a check, the policy validator, the judge and the CLI cannot
-- disagree about a name or an order.
--
--   vocab.SEVERITIES      name -> rank (ok lowest; error highest)
--   vocab.SEVERITY_LIST   the names in rank order
--   vocab.TLS_VERSIONS    OpenSSL protocol names, oldest first
--   vocab.TLS_RANK        name -> rank (SSLv3 = 0 ... TLSv1.3 = 4)
--   vocab.RESERVED_KINDS  kinds of address not routed on the internet
--                         (mxprobe.net.iputil.classify returns these)
--   vocab.VERDICTS        a result's verdicts, best first
--   vocab.VERDICT_EXIT    verdict -> exit code (the monitoring-plugin statuses)
--   vocab.set_of(list)    { [v] = true } for a list

local M = {}

M.SEVERITY_LIST = { "ok", "info", "warning", "critical", "inconclusive", "error" }
M.SEVERITIES = {}
for i, s in ipairs(M.SEVERITY_LIST) do M.SEVERITIES[s] = i end

M.TLS_VERSIONS = { "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" }
M.TLS_RANK = {}
for i, v in ipairs(M.TLS_VERSIONS) do M.TLS_RANK[v] = i - 1 end

M.RESERVED_KINDS = { "documentation", "private", "loopback", "linklocal", "shared", "reserved", "multicast", "unspecified" }

M.VERDICTS = { "ok", "warning", "critical", "inconclusive" }
M.VERDICT_EXIT = { ok = 0, warning = 1, critical = 2, inconclusive = 3 }

function M.set_of(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end

return M
