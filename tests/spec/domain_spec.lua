-- mxprobe.net.domain: the one validator of names.  Its scans are written for
-- speed (issue 15 (c)); here they are held to the plain label walk they
-- replace, on names made to hit every rule's edge.
local domain = require "mxprobe.net.domain"
local audit = require "mxprobe.app.audit"
local core = require "mxprobe.core"
local iputil = require "mxprobe.net.iputil"

-- the reference: every rule checked label by label, nothing skipped
local function ref_problem(name)
    if name == "" then return "empty" end
    if #name > 253 then return "longer than 253 characters" end
    for label in (name .. "."):gmatch("([^.]*)%.") do
        if label == "" then return "empty label" end
        if #label > 63 then return "a label is longer than 63 characters" end
        if label:find("[^%w%-_]") then return "only letters, digits, '-' and '_' are allowed" end
        if label:sub(1, 1) == "-" or label:sub(-1) == "-" then return "a label starts or ends with '-'" end
    end
end

local function ref_parse(s)
    local what = ("'%s' is not a domain name"):format(s)
    if s == "" then return nil, "empty" end
    local bare = s:match("^%[(.*)%]$") or s
    if iputil.family(bare) then return nil, "address" end
    if s:find("[%c%s]") then return nil, "spaces" end
    local given
    if s:find("[\128-\255]") then
        local ascii = core.idn.to_ascii(s)
        if not ascii then return nil, "idn" end
        given, s = s, ascii
    end
    local name = s:gsub("%.$", "")
    if name == "" then return nil, what end
    local why = ref_problem(name)
    if not why and name:match("[^.]*$"):match("^%d+$") then why = "digits" end
    if why then return nil, why end
    return name, given
end

-- a deterministic generator of names near every edge: label lengths around
-- 63, names around 253, dots and hyphens at the ends, digits, odd bytes
local function gen(seed)
    local x = seed
    local function rnd(n)
        x = (x * 1103515245 + 12345) % 2147483648
        return x % n
    end
    local ODD = { " ", "\t", "#", "[", "]", ":", "/", "\0", "\127", "\195\188", "\255", "*" }
    local function label()
        local r = rnd(10)
        local len = r == 0 and 61 + rnd(5) or r == 1 and 0 or 1 + rnd(12)
        local t = {}
        for i = 1, len do
            local k = rnd(40)
            if k < 24 then t[i] = string.char(97 + rnd(26))
            elseif k < 32 then t[i] = string.char(48 + rnd(10))
            elseif k < 35 then t[i] = "-"
            elseif k < 37 then t[i] = "_"
            elseif k < 39 then t[i] = string.char(65 + rnd(26))
            else t[i] = ODD[1 + rnd(#ODD)] end
        end
        return table.concat(t)
    end
    return function()
        local n = rnd(8) == 0 and 4 + rnd(5) or 1 + rnd(4)
        local parts = {}
        for i = 1, n do parts[i] = label() end
        local s = table.concat(parts, ".")
        local e = rnd(12)
        if e == 0 then s = s .. "." elseif e == 1 then s = "." .. s elseif e == 2 then s = s .. "-"
        elseif e == 3 then s = "-" .. s elseif e == 4 then s = s .. ".123" elseif e == 5 then s = ("a"):rep(rnd(260)) end
        return s
    end
end

describe("domain", function()
    it("problem agrees with the label walk on 60,000 names near every edge", function()
        local next_name = gen(7)
        local bad = 0
        for _ = 1, 60000 do
            local s = next_name()
            for _, name in ipairs { s, s:lower() } do
                local want, got = ref_problem(name), domain.problem(name)
                if want ~= got then
                    bad = bad + 1
                    assert.are.equal(want, got, ("problem(%q)"):format(name))
                end
            end
        end
        assert.are.equal(0, bad)
    end)

    it("parse accepts and refuses what the label walk does, on 60,000 names", function()
        local next_name = gen(11)
        for _ = 1, 60000 do
            local s = next_name()
            local name, extra = domain.parse(s)
            local want, wextra = ref_parse(s)
            assert.are.equal(want, name, ("parse(%q): %s"):format(s, tostring(extra)))
            if name then assert.are.equal(wextra, extra, ("parse(%q)"):format(s)) end
        end
    end)

    it("parse: the edges by name", function()
        assert.are.equal("example.org", domain.parse("example.org."))
        assert.are.equal("example.org", domain.parse("example.org"))
        assert.are.equal("_mta-sts.example.org", domain.parse("_mta-sts.example.org"))
        assert.are.same({ "xn--bcher-kva.example", "bücher.example" }, { domain.parse("bücher.example") })
        local function refused(s, why)
            local name, msg = domain.parse(s)
            assert.is_nil(name, s)
            assert.truthy(msg:find(why, 1, true), ("%q: %s"):format(s, msg))
        end
        refused("192.0.2.1", "IP address")
        refused("010.0.0.1", "the last label is all digits")
        refused("[192.0.2.1]", "IP address")
        refused("2001:db8::1", "IP address")
        refused("a.123", "the last label is all digits")
        refused("123", "the last label is all digits")
        refused("a b.example", "spaces or control characters")
        refused("a.example\r", "spaces or control characters")
        refused(("a"):rep(63) .. "x.example", "longer than 63")
        refused(("a"):rep(63) .. "." .. ("b"):rep(63) .. "." .. ("c"):rep(63) .. "." .. ("d"):rep(62), "longer than 253")
        refused("-a.example", "starts or ends with '-'")
        refused("a-.example", "starts or ends with '-'")
        refused("a..example", "empty label")
        refused(".", "is not a domain name")
        refused("a/b.example", "only letters, digits")
        assert.are.equal(("a"):rep(63) .. ".example", domain.parse(("a"):rep(63) .. ".example"))
        local n253 = ("a"):rep(63) .. "." .. ("b"):rep(63) .. "." .. ("c"):rep(63) .. "." .. ("d"):rep(61)
        assert.are.equal(253, #n253)
        assert.are.equal(n253, domain.parse(n253))
        assert.are.equal("a.b2", domain.parse("a.b2"))
    end)

    it("an audit input line: comments, spaces, CR and a BOM around the name", function()
        local function name_of(line, n) local e = audit.parse_line(line, n or 2); return e and (e.name or e.error) end
        assert.are.equal("example.org", name_of("example.org"))
        assert.are.equal("example.org", name_of("  example.org\t"))
        assert.are.equal("example.org", name_of("example.org\r"))
        assert.are.equal("example.org", name_of("example.org # the main one"))
        assert.are.equal("example.org", name_of("example.org#x"))
        assert.are.equal("example.org", name_of("\239\187\191example.org", 1))
        assert.are.equal("example.org", name_of("\v\fexample.org\n"))
        assert.is_nil(name_of(""))
        assert.is_nil(name_of("   "))
        assert.is_nil(name_of("# a comment"))
        assert.is_nil(name_of("  # a comment"))
        assert.truthy(name_of("exa mple.org"):find("spaces", 1, true))
    end)
end)
