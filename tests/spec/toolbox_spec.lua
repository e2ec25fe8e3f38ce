-- Issue 13, the admin's toolbox: --version with the libraries' versions,
-- the completion scripts and the man page, made from the parser that
-- --help prints.  (Installed paths: tests/install_smoke; the Debian
-- package: tests/deb_smoke.)
local cli = require "mxprobe.app.cli"
local manpage = require "mxprobe.app.manpage"

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

local function run(argv, env)
  local out, err = buffer(), buffer()
  env = env or {}
  env.stdout, env.stderr = out, err
  env.engine = env.engine or { new = function() error("no engine in this spec", 0) end }
  local code = cli.main(argv, env)
  return code, out:text(), err:text()
end

-- every long option a parser knows, from argparse's own tables
local function long_options(p)
  local names = {}
  for _, o in ipairs(p._options) do
    for _, a in ipairs(o._aliases) do
      if a:match("^%-%-") then names[#names + 1] = a end
    end
  end
  return names
end

describe("toolbox: --version", function()
  it("names the versions of Lua, OpenSSL, c-ares and libidn2 in use", function()
    local code, out = run({ "--version" })
    assert.equal(0, code)
    local libs = require("mxprobe.core").libs
    assert.matches("^mxprobe %d+%.%d+%.%d+\n", out)
    assert.matches("\n  Lua      5%.4%.%d+\n", out)
    assert.matches("\n  OpenSSL  3%.%d+%.%d+", out)
    assert.matches("\n  c%-ares   %d+%.%d+%.%d+\n", out)
    assert.matches("\n  libidn2  %d+%.%d+", out)
    -- asked at run time, not the headers' numbers: the same strings the libraries give
    assert.matches(libs.cares, out, 1, true)
    assert.matches((libs.openssl:gsub("^OpenSSL ", "")), out, 1, true)
  end)
end)

describe("toolbox: --help points to the man page", function()
  it("mxprobe and mxprobe audit", function()
    local _, out = run({ "--help" })
    assert.matches("Full documentation: man mxprobe\n?$", out)
    assert.not_matches("docs/cli.md", out, 1, true)
    _, out = run({ "audit", "--help" })
    assert.matches("man mxprobe", out, 1, true)
  end)
end)

describe("toolbox: --completion", function()
  it("bash: every option of mxprobe and of the audit command", function()
    local code, out = run({ "--completion", "bash" })
    assert.equal(0, code)
    assert.matches("^_mxprobe%(%)", out)
    for _, o in ipairs(long_options(cli.parser())) do assert.matches("[ \"]" .. o:gsub("%-", "%%-") .. "[ \"]", out) end
    for _, o in ipairs(long_options(cli.parser("mxprobe audit", "audit"))) do
      assert.matches(o, out, 1, true)
    end
    assert.matches("audit", out, 1, true)
  end)

  it("zsh and fish", function()
    local code, out = run({ "--completion", "zsh" })
    assert.equal(0, code)
    assert.matches("^#compdef mxprobe", out)
    assert.matches("--resolver", out, 1, true)
    code, out = run({ "--completion", "fish" })
    assert.equal(0, code)
    assert.matches("complete -c mxprobe", out, 1, true)
    assert.matches("-l shard", out, 1, true) -- an audit option
  end)

  it("an unknown shell is a usage error", function()
    local code, out, err = run({ "--completion", "tcsh" })
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("^mxprobe: .*%-%-completion.*bash.*\n$", err)
  end)
end)

describe("toolbox: the man page", function()
  local page = manpage.render("9.8.7", "2026-12-01")

  it("has the sections of a man page, the version and the date", function()
    assert.matches('^%.TH MXPROBE 1 "2026%-12%-01" "mxprobe 9%.8%.7"', page)
    for _, s in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "AUDIT", "EXIT STATUS", "EXAMPLES", "ENVIRONMENT", "FILES" } do
      assert.matches("\n%.SH " .. s .. "\n", page)
    end
  end)

  it("documents every option of --help and of audit --help, with its help text", function()
    for _, p in ipairs { cli.parser(), cli.parser("mxprobe audit", "audit") } do
      for _, o in ipairs(p._options) do
        local name = o._aliases[#o._aliases]
        assert.matches("\\fB" .. name:gsub("%-", "\\-") .. "\\fR", page, 1, true)
        local first = (o._description or ""):match("^[^%(%.:,]+")
        local flat = page:gsub("\n", " "):gsub("\\%-", "-")
        if first then assert.matches(first, flat, 1, true) end
      end
    end
  end)

  it("escapes roff: no line starts with a stray . or '", function()
    for line in page:gmatch("[^\n]+") do
      if line:match("^[.']") then
        local req = line:match("^%.(%a%a?)")
        assert.truthy(({ TH = 1, SH = 1, SS = 1, TP = 1, PP = 1, nf = 1, fi = 1, RS = 1, RE = 1, B = 1, I = 1 })[req], line)
      end
    end
    assert.equal(".PP\n\\&.dotted", manpage.escape(".PP\n.dotted"):gsub("^\\&", ""))
    assert.equal("a\\eb", manpage.escape("a\\b"))
  end)

  it("man renders it without warnings", function()
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w")); f:write(page); f:close()
    local p = assert(io.popen("MANWIDTH=80 man --warnings -l " .. tmp .. " 2>&1 >/dev/null"))
    local warnings = p:read("a"); p:close()
    os.remove(tmp)
    assert.equal("", warnings)
  end)
end)
