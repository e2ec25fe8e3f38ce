-- audit --resume is exactly-once for every input byte sequence (issue 16,
-- item 6), reads earlier outputs line by line and cuts a torn last line off
-- in place, and the input is streamed (item 7).  A stub engine; no network.
local cjson = require "cjson"
local lfs = require "lfs"
local audit = require "mxprobe.app.audit"
local csv = require "mxprobe.report.csv"

local function tmpfile(content)
  local p = os.tmpname()
  if content then
    local f = assert(io.open(p, "wb")); f:write(content); f:close()
  end
  return p
end

local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a"); f:close()
  return s
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

-- engine stub: every domain "ok"; calls[] lists what was checked;
-- on_call(d) runs inside each check
local function stub(on_call)
  local E = { calls = {} }
  function E.new()
    return {
      config = { limits = {} },
      check_domain = function(_, d)
        E.calls[#E.calls + 1] = d
        if on_call then on_call(d) end
        return { schema = 1, domain = d, verdict = "ok", exit_code = 0, servers = {}, findings = {},
                 dns = { mx = {}, findings = { { code = "X", evidence = { domain = "decoy.test" } } } } }
      end,
    }
  end
  return E
end

local function audit_run(opts)
  opts.summary = false
  opts.progress = false
  opts.signals = false
  opts.stderr = { write = function() end }
  return audit.run(opts)
end

-- Lines that are not domain names, and whose bytes JSON and CSV cannot
-- carry as they are: invalid UTF-8, controls, and texts that look like
-- their escaped forms.
local ODD = {
  "\255bad", "\\xFFbad", "bad\255", "\192\128.test", "a\rb", "a\\x0Db", "x\\y", "x\\x5Cy",
  "\237\160\128.test", "\0nul", "tab\tinside", "ok\226\130\172.test", "\"quoted\",comma",
}

for _, format in ipairs { "jsonl", "csv" } do
  describe("audit --resume (" .. format .. ")", function()
    it("writes every input line exactly once, however often it is resumed", function()
      local all = { "a.test", "b.test" }
      for _, l in ipairs(ODD) do all[#all + 1] = l end
      local half = {}
      for i = 1, #all, 2 do half[#half + 1] = all[i] end
      local input_half, input_all = tmpfile(table.concat(half, "\n") .. "\n"), tmpfile(table.concat(all, "\n") .. "\n")
      local out = tmpfile()
      os.remove(out)
      audit_run { input = input_half, output = out, resume = out, engine = stub(), format = format }
      local first = slurp(out)
      local calls = {}
      for round = 1, 3 do
        local e = stub()
        local s = audit_run { input = input_all, output = out, resume = out, engine = e, format = format }
        calls[round] = #e.calls
        assert.equal(0, s.exit_code)
        if round > 1 then assert.equal(#all, s.input.already_recorded, "round " .. round) end
      end
      assert.same({ 1, 0, 0 }, calls) -- only b.test was left to check
      local text = slurp(out)
      assert.equal(first, text:sub(1, #first)) -- appended, never rewritten
      local rows = lines_of(text)
      if format == "csv" then table.remove(rows, 1) end
      assert.equal(#all, #rows)
      local seen = {}
      for _, l in ipairs(rows) do
        local d = format == "csv" and csv.parse_line(l)[1] or cjson.decode(l).domain
        assert.is_nil(seen[d], "twice: " .. d)
        seen[d] = true
      end
      os.remove(input_half); os.remove(input_all); os.remove(out)
    end)
  end)
end

describe("audit.input_text", function()
  it("is one-to-one: different lines never share a record's text", function()
    local seen = {}
    for _, l in ipairs(ODD) do
      local t = audit.input_text(l)
      assert.is_nil(seen[t], l)
      seen[t] = true
      assert.truthy(utf8.len(t), t)
      assert.is_nil(t:find("[%z\1-\31\127]"))
    end
    assert.equal("\\xFFbad", audit.input_text("\255bad"))
    assert.equal("\\x5CxFFbad", audit.input_text("\\xFFbad"))
    assert.equal("two words.test", audit.input_text("two words.test"))
    assert.equal("ok\226\130\172.test", audit.input_text("ok\226\130\172.test"))
  end)

  it("is what an entry that is not a domain name is keyed by", function()
    local e = audit.parse_line("\255bad", 1)
    assert.equal("\\xFFbad", audit.key(e))
  end)
end)

describe("audit.recorded", function()
  it("takes each record's own domain, not a nested one, in any key order", function()
    local p = tmpfile(table.concat({
      '{"dns":{"findings":[{"evidence":{"domain":"decoy.test"}}]},"domain":"a.test","x":"}{\\"]["}',
      '{"domain" : "b.test", "dns": {"domain": "decoy2.test"}}',
      '{"z":[1,2,{"domain":"decoy3.test"}],"n":-1.5e3,"t":true,"domain":"c\\"q\\\\.test"}',
      '{"dns":{"domain":"decoy4.test"}}',
      '{"domain":',
    }, "\n") .. "\n")
    local set, info = audit.recorded(p)
    os.remove(p)
    assert.same({ ["a.test"] = true, ["b.test"] = true, ['c"q\\.test'] = true }, set)
    assert.equal(3, info.records)
    assert.equal(2, info.unreadable)
  end)

  it("skips only the first line as a CSV header: a domain named 'domain' is a record", function()
    local p = tmpfile(csv.header() .. "domain,ok\n\"x,y\",ok\n")
    local set = audit.recorded(p)
    os.remove(p)
    assert.same({ domain = true, ["x,y"] = true }, set)
  end)

  it("cuts a torn last line off in place: same file, same bytes before it", function()
    local good = cjson.encode({ domain = "a.test", verdict = "ok" }) .. "\n"
    local p = tmpfile(good .. '{"domain":"b.test","verd')
    local ino = lfs.attributes(p).ino
    audit_run { domains = { "a.test", "b.test" }, output = p, resume = p, engine = stub() }
    assert.equal(ino, lfs.attributes(p).ino) -- not a copy renamed over it
    local rows = lines_of(slurp(p))
    os.remove(p)
    assert.equal(2, #rows)
    assert.equal(good, rows[1] .. "\n")
    assert.equal("b.test", cjson.decode(rows[2]).domain)
  end)
end)

describe("audit input streaming", function()
  it("starts checking before the input is read to its end", function()
    local names = {}
    for i = 1, 50000 do names[i] = ("d%05d.test"):format(i) end
    local p = tmpfile(table.concat(names, "\n") .. "\n")
    local size = lfs.attributes(p).size
    local f = assert(io.open(p))
    local pos
    local e = stub(function() pos = pos or f:seek("cur") end)
    local s = audit_run { input = f, output = false, engine = e, parallel = 1 }
    f:close(); os.remove(p)
    assert.equal(50000, s.domains)
    assert.equal(50000, #e.calls)
    assert.is_true(pos < size / 10, ("read %d of %d bytes before the first check"):format(pos, size))
  end)
end)

describe("audit.recorded (found by fuzzing)", function()
  it("reads a CSV record whose text starts with '{', and JSON records wherever they are", function()
    local p = tmpfile(csv.header() .. csv.render(audit.error_record(audit.parse_line("{mple", 1), "x")))
    local set = audit.recorded(p)
    os.remove(p)
    assert.same({ ["{mple"] = true }, set)
    p = tmpfile('not a record\n{"domain":"a.test"}\n')
    set = audit.recorded(p)
    os.remove(p)
    assert.is_true(set["a.test"])
  end)

  it("decodes keys with escapes and takes the last of two keys, as cjson does", function()
    assert.equal("a.test", audit.json_field('{"dom\\u0061in":"a.test"}', "domain"))
    assert.equal("b.test", audit.json_field('{"domain":"a.test","domain":"b.test"}', "domain"))
    assert.equal(cjson.decode('{"domain":"a.test","domain":"b.test"}').domain, "b.test")
  end)
end)
