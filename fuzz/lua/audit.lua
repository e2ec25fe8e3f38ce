-- fuzz/lua/audit.lua: the audit input and resume readers (mxprobe.app.audit).
-- The input is split at the first NUL: before it, an input file (one
-- domain per line); after it, the text of an earlier output for --resume.
-- Invariants:
--   * every input line parses (audit.stream) to nothing, a domain entry, or
--     an error entry; a line's key is one-to-one with its bytes
--     (input_text decodes back to the line) and is valid UTF-8 without
--     control characters;
--   * item 6: the record an audit writes for each entry, in JSON Lines and
--     in CSV, is read back by audit.recorded under that entry's key;
--   * audit.recorded never raises on any file, counts every complete line
--     as a record, unreadable or the header, and a torn last line as
--     partial; where cjson decodes a line to an object with a string
--     "domain", the record's key is that string.
package.path = package.path .. ";" .. require("mxprobe.runtime.paths").root .. "/fuzz/lua/?.lua"
local common = require "common"
local audit = require "mxprobe.app.audit"
local json = require "mxprobe.report.json"
local csv = require "mxprobe.report.csv"
local cjson = require "cjson"
local dir = common.workdir("audit")
local input_path, out_path = dir .. "/input.txt", dir .. "/out"
common.disarm()

local function decode_text(t) -- the inverse of audit.input_text
  return (t:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

return function(bytes)
  local input, previous = bytes:match("^([^%z]*)%z(.*)$")
  input, previous = input or bytes, previous or ""

  -- the input reader
  common.write_file(input_path, input)
  local st = assert(audit.stream(input_path))
  local entries = {}
  for e in st.next do entries[#entries + 1] = e end
  for _, e in ipairs(entries) do
    local key = audit.key(e)
    common.invariant(type(key) == "string" and key ~= "", "an entry without a key")
    common.invariant(utf8.len(key) ~= nil and not key:find("[%z\1-\31\127]"), "key %q is not clean UTF-8", key)
    if e.error then
      local again = decode_text(key)
      common.invariant(audit.input_text(again) == key, "input_text is not one-to-one for %q", key)
    end
  end

  -- item 6: every entry's record is found again under its key
  for _, fmt in ipairs { "jsonl", "csv" } do
    local text = {}
    if fmt == "csv" then text[1] = csv.header() end
    for _, e in ipairs(entries) do
      local rec = audit.error_record(e, "fuzz")
      text[#text + 1] = fmt == "csv" and csv.render(rec) or json.render(rec)
    end
    common.write_file(out_path, table.concat(text))
    local set = audit.recorded(out_path)
    for _, e in ipairs(entries) do
      common.invariant(set[audit.key(e)], "%s record of %q not found by resume", fmt, audit.key(e))
    end
  end

  -- the resume reader on arbitrary text
  common.write_file(out_path, previous)
  local ok, set, info = pcall(audit.recorded, out_path)
  common.invariant(ok, "audit.recorded raised: %s", tostring(set))
  common.invariant(type(set) == "table", "audit.recorded gave no set")
  common.invariant(info.size == #previous, "size %d, file %d", info.size, #previous)
  local torn = previous:match("[^\n]*$")
  common.invariant(info.partial == #torn, "partial %d, torn %d", info.partial, #torn)
  for i, l in ipairs(lines_of(previous)) do
    if l:byte(1) == 123 then
      local dok, rec = pcall(cjson.decode, l)
      if dok and type(rec) == "table" and type(rec.domain) == "string" then
        local mine = audit.json_field(l, "domain")
        common.invariant(mine == rec.domain, "line %d: json_field %q, cjson %q", i, tostring(mine), rec.domain)
        common.invariant(set[rec.domain], "line %d: record %q not in the set", i, rec.domain)
      end
    end
  end
end
