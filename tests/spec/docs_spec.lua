-- Docs that run: every Lua block of docs/policies.md, docs/writing-checks.md
-- and docs/api.md is executed according to its tag, so the documentation
-- cannot rot:
--   ```lua policy    a complete policy: loaded like --policy FILE (strict
--                    validation), then judged over a sample result; its
--                    rules must not fail
--   ```lua check     a complete check file: loaded with the stock checks and
--                    run against a scripted SMTP server; it must report a
--                    finding of its own and no CHECK_ERROR
--   ```lua run       a snippet run inside the host, with its asserts
--   ```lua fragment  part of a file: must compile (as a chunk or as fields
--                    of a table)
-- A ```lua block without one of these tags fails.  Also: every policy field
-- is in docs/policies.md, every ctx method and rule api function in
-- docs/api.md, every key of the check contract in docs/writing-checks.md.
local loop = require "mxprobe.runtime.loop"
local engine = require "mxprobe.engine"
local policy = require "mxprobe.policy"
local checks = require "mxprobe.engine.checks"
local context = require "mxprobe.engine.context"
local judge = require "mxprobe.policy.judge"
local rules = require "mxprobe.policy.rules"
local fake = require "tests.helpers.fake_smtp"

local ROOT = require("mxprobe.runtime.paths").root
local DOCS = { "docs/policies.md", "docs/writing-checks.md", "docs/api.md" }
local TAGS = { policy = true, check = true, run = true, fragment = true }

local function read(path)
  local f = assert(io.open(ROOT .. "/" .. path))
  local s = f:read("a")
  f:close()
  return s
end

-- { file, line, tag, code } for every fenced block with info string "lua ..."
local function lua_blocks(path)
  local out, cur = {}, nil
  local n = 0
  for line in (read(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        cur.code = table.concat(cur.lines, "\n") .. "\n"
        out[#out + 1] = cur
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
      end
    else
      local info = line:match("^```(.*)$")
      if info then
        local lang, tag = info:match("^(%S+)%s*(%S*)")
        if lang == "lua" then
          cur = { file = path, line = n, tag = tag, lines = {} }
        elseif lang then
          cur = { file = path, line = n, tag = "(not lua)", lines = {}, skip = true }
        else
          cur = { file = path, line = n, tag = "(plain)", lines = {}, skip = true }
        end
      end
    end
  end
  assert(cur == nil, path .. ": a code block is not closed")
  local lua = {}
  for _, b in ipairs(out) do if not b.skip then lua[#lua + 1] = b end end
  return lua
end

local tmp = assert(io.popen("mktemp -d /tmp/mxprobe-docs.XXXXXX")):read("l")
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local ALL = checks.load(checks.dirs { installed_checks = false, checks_dirs = { ROOT .. "/examples/checks" } })
local CATALOG = engine.catalog({ all_checks = ALL })

-- A domain with a good primary and a backup without STARTTLS.
local function sample_result()
  local function F(code, severity, check) return { code = code, check = check, severity = severity, message = code, evidence = {} } end
  return {
    schema = 1, domain = "example.org", policy = "x",
    dns = { mx = { { preference = 10, host = "mx1.example.org", addresses = { "192.0.2.10" } },
                   { preference = 20, host = "backup.example.net", addresses = { "198.51.100.20" } } },
            findings = { F("MX_OK", "ok", "mx") } },
    findings = {},
    servers = {
      { host = "mx1.example.org", address = "192.0.2.10", family = 4, port = 25, preference = 10, transcript = {},
        facts = { connect = { state = "connected" }, banner = { ok = true, code = 220, text = "mx1.example.org ESMTP", seconds = 0.1 },
                  ehlo = { starttls = true, extensions = { "STARTTLS" }, keywords = { STARTTLS = "" } },
                  starttls = { offered = true, accepted = true, handshake = true, version = "TLSv1.3" },
                  certificate = { verified = true, name_match = true, days_left = 80 } },
        findings = { F("CONNECT_OK", "ok", "connect"), F("BANNER_OK", "ok", "banner"), F("TLS_VERSION_13", "ok", "starttls"),
                     F("CERT_OK", "ok", "certificate") } },
      { host = "backup.example.net", address = "198.51.100.20", family = 4, port = 25, preference = 20, transcript = {},
        facts = { connect = { state = "connected" }, banner = { ok = true, code = 220, text = "backup.example.net ESMTP Postfix 3.7.2", seconds = 0.2 },
                  ehlo = { starttls = false, extensions = {}, keywords = {} }, starttls = { offered = false } },
        findings = { F("CONNECT_OK", "ok", "connect"), F("BANNER_OK", "ok", "banner"), F("STARTTLS_NOT_OFFERED", "critical", "starttls") } },
    },
  }
end

local quiet_dns = { query = function() return { rcode = "NOERROR", answers = {} } end }

local function judge_sample(pol)
  local run = { policy = pol, catalog = CATALOG, config = { timeouts = { dns = 1 } }, dns = quiet_dns }
  local r = sample_result()
  judge.judge(run, r)
  return r
end

local function policy_errors(r)
  local out = {}
  judge.each_finding(r, function(f)
    if f.severity == "error" then out[#out + 1] = f.message end
  end)
  return out
end

-- An SMTP server that answers whatever comes, for check blocks.
local function permissive_server()
  local function converse(c)
    c:send("220 mx.test ESMTP Postfix\r\n")
    while true do
      local line = c:read_line()
      if not line then return true end
      local verb = line:match("^(%a+)") or ""
      verb = verb:upper()
      if verb == "EHLO" then c:send("250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
      elseif verb == "HELO" then c:send("250 mx.test\r\n")
      elseif verb == "VRFY" then c:send("252 2.0.0 Cannot VRFY user\r\n")
      elseif verb == "MAIL" or verb == "RSET" or verb == "NOOP" then c:send("250 2.0.0 Ok\r\n")
      elseif verb == "RCPT" then c:send("554 5.7.1 Relay access denied\r\n")
      elseif verb == "QUIT" then c:send("221 2.0.0 Bye\r\n"); return true
      else c:send("502 5.5.2 Error: command not recognized\r\n") end
    end
  end
  return fake.start({ converse }, { connections = 8, lifetime = 10 })
end

local check_dns = {
  query = function(_, name, qtype)
    if qtype == "MX" then return { rcode = "NOERROR", answers = { { type = "MX", preference = 10, host = "mx.test." } } } end
    if qtype == "A" and name == "mx.test" then return { rcode = "NOERROR", answers = { { type = "A", address = "127.0.0.1" } } } end
    if qtype == "PTR" then return { rcode = "NOERROR", answers = { { type = "PTR", host = "mx.test." } } } end
    return { rcode = "NOERROR", answers = {} }
  end,
}

local counts = { policy = 0, check = 0, run = 0, fragment = 0 }

for _, doc in ipairs(DOCS) do
  describe(doc, function()
    for i, b in ipairs(lua_blocks(doc)) do
      local where = ("%s:%d"):format(b.file, b.line)
      it(("block %d (%s, lua %s)"):format(i, where, b.tag ~= "" and b.tag or "without a tag"), function()
        assert.is_true(TAGS[b.tag] == true,
          where .. ": a lua block must be tagged policy, check, run or fragment (```lua run)")
        counts[b.tag] = counts[b.tag] + 1
        if b.tag == "policy" then
          local path = write(("%s/block%d.lua"):format(tmp, b.line), b.code)
          local ok, pol = pcall(policy.load, path, CATALOG, ALL)
          assert.is_true(ok, where .. ": " .. tostring(pol))
          local r = judge_sample(pol)
          assert.same({}, policy_errors(r), where)
          assert.truthy(judge.EXIT[r.verdict])
        elseif b.tag == "check" then
          local def = assert(load(b.code, "=" .. where, "t", setmetatable({}, { __index = _G })))()
          checks.validate(def, where)
          local dir = tmp .. "/checks" .. b.line
          os.execute("mkdir -p " .. dir)
          write(dir .. "/" .. def.id .. ".lua", b.code)
          local srv = permissive_server()
          local run = engine.new { dns = check_dns, checks_dirs = { dir }, installed_checks = false,
            config = { only = { def.id }, port = srv.port, allow_reserved = { "loopback" }, families = { 4 }, helo = "docs.test",
                       timeouts = { connect = 2, greeting = 3, command = 3 } } }
          local r = run:check_domain("example.test")
          srv:stop()
          local mine, errors = 0, {}
          judge.each_finding(r, function(f)
            if f.check == def.id then mine = mine + 1 end
            if f.code == "CHECK_ERROR" then errors[#errors + 1] = f.message end
          end)
          assert.same({}, errors, where)
          assert.is_true(mine > 0, where .. ": the check reported nothing")
        elseif b.tag == "run" then
          local env = setmetatable({ print = function() end }, { __index = _G })
          local chunk = assert(load(b.code, "=" .. where, "t", env))
          chunk()
        else
          local ok = load(b.code, "=" .. where, "t") or load("return {\n" .. b.code .. "\n}", "=" .. where, "t")
          assert.truthy(ok, where .. ": does not compile")
        end
      end)
    end
  end)
end

describe("the docs' worked examples say what they claim", function()
  it("policies.md, 'A first policy': the backup without STARTTLS is OK under it, critical by default", function()
    local first = lua_blocks("docs/policies.md")[1]
    local pol = policy.load(write(tmp .. "/site.lua", first.code), CATALOG, ALL)
    assert.equal("ok", judge_sample(pol).verdict)
    assert.equal("critical", judge_sample(policy.load(nil)).verdict)
  end)

  it("every tag is used", function()
    -- runs after the blocks above (busted keeps the order of the file)
    for tag, n in pairs(counts) do assert.is_true(n > 0, "no ```lua " .. tag .. " block ran") end
    assert.is_true(counts.policy >= 10, "policy blocks: " .. counts.policy)
    assert.is_true(counts.check >= 3, "check blocks: " .. counts.check)
    assert.is_true(counts.run >= 5, "run blocks: " .. counts.run)
  end)
end)

describe("the docs cover the API", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end) -- the last block: the temporary files go
  local function backticked_words(text)
    local words = {}
    for span in text:gmatch("`([^`\n]+)`") do
      for w in span:gmatch("[%a_][%w_]*") do words[w] = true end
    end
    return words
  end

  it("docs/policies.md names every policy field", function()
    local words = backticked_words(read("docs/policies.md"))
    local missing = {}
    local function walk(schema, prefix)
      for k, v in pairs(schema) do
        if not words[k] then missing[#missing + 1] = prefix .. k end
        if type(v) == "table" then walk(v, prefix .. k .. ".") end
      end
    end
    walk(policy.SCHEMA, "")
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("docs/api.md lists every ctx method and every api function of a rule", function()
    local api_md = read("docs/api.md")
    local missing = {}
    local run = { policy = policy.load(nil), catalog = CATALOG, config = { timeouts = {} }, dns = quiet_dns }
    local r = sample_result()
    local ctx = context.server(run, r, r.servers[1])
    local Ctx = getmetatable(ctx).__index
    for k, v in pairs(Ctx) do
      if type(v) == "function" and not api_md:find("ctx:" .. k .. "(", 1, true) then missing[#missing + 1] = "ctx:" .. k end
    end
    for k, v in pairs(rules.api(run, r, { name = "x", source = "x:1" })) do
      if type(v) == "function" and not api_md:find("api." .. k .. "(", 1, true) then missing[#missing + 1] = "api." .. k end
      if type(v) ~= "function" and not api_md:find("api." .. k, 1, true) then missing[#missing + 1] = "api." .. k end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("docs/writing-checks.md names every key of the check contract", function()
    local words = backticked_words(read("docs/writing-checks.md"))
    local missing = {}
    for k in pairs(checks.KEYS) do if not words[k] then missing[#missing + 1] = k end end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("every file the docs point to exists", function()
    for _, doc in ipairs(DOCS) do
      for path in read(doc):gmatch("%((%.%./[%w_%-%./]+)%)") do
        local f = io.open(ROOT .. "/docs/" .. path)
        assert.truthy(f, doc .. " links to " .. path)
        if f then f:close() end
      end
      for path in read(doc):gmatch("`(examples/[%w_%-%./]+)`") do
        local f = io.open(ROOT .. "/" .. path)
        assert.truthy(f, doc .. " names " .. path)
        if f then f:close() end
      end
    end
  end)
end)
