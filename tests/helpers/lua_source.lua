-- A small Lua 5.4 lexer for specs that read our own source: where each
-- function starts and ends, and which `require` calls sit inside a
-- function (lazy) rather than at the top level of a file.  Strings and
-- comments are skipped; comments are kept per line (what the rules read).
local lfs = require "lfs"

local M = {}

--- Every *.lua file under dir, sorted (lua-filesystem, no shell).
function M.files(dir)
  local out = {}
  local function walk(d)
    for name in lfs.dir(d) do
      if name ~= "." and name ~= ".." then
        local p = d .. "/" .. name
        local mode = lfs.attributes(p, "mode")
        if mode == "directory" then walk(p)
        elseif name:match("%.lua$") then out[#out + 1] = p end
      end
    end
  end
  walk(dir)
  table.sort(out)
  return out
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Tokens { kind = "name" | "sym", text =, line = } and comments[line] = text.
local function lex(src)
  local toks, comments = {}, {}
  local i, n, line = 1, #src, 1
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = "]" .. eq .. "]"
    local e = src:find(close, at, true)
    if not e then error("unfinished long bracket at line " .. line) end
    return e + #close - 1
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local e = long_bracket(i + 2)
      local stop = e or (src:find("\n", i, true) or n + 1) - 1
      local text = src:sub(i, stop)
      comments[line] = (comments[line] or "") .. text
      for _ in text:gmatch("\n") do line = line + 1 end
      i = stop + 1
    elseif c == "\"" or c == "'" then
      local j = i + 1
      while true do
        local d = src:sub(j, j)
        if d == "\\" then
          if src:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c or d == "" then break
        else
          if d == "\n" then line = line + 1 end
          j = j + 1
        end
      end
      toks[#toks + 1] = { kind = "string", line = line }
      i = j + 1
    elseif c == "[" and long_bracket(i) then
      local e = long_bracket(i)
      for _ in src:sub(i, e):gmatch("\n") do line = line + 1 end
      toks[#toks + 1] = { kind = "string", line = line }
      i = e + 1
    elseif c:match("[%a_]") then
      local w = src:match("^[%w_]+", i)
      toks[#toks + 1] = { kind = "name", text = w, line = line }
      i = i + #w
    elseif c:match("%d") then
      local num = src:match("^0[xX][%x%.pP%+%-]+", i) or src:match("^[%d%.]+[eE][%+%-]?%d+", i) or src:match("^[%d%.]+", i)
      i = i + #num
    else -- "..." and ".." are not ".": `local x = ... if` has no field named if
      local sym = src:match("^%.%.%.", i) or src:match("^%.%.", i) or src:match("^::", i) or c
      toks[#toks + 1] = { kind = "sym", text = sym, line = line }
      i = i + #sym
    end
  end
  return toks, comments
end

--- Functions { line =, last =, length = } and lazy requires { line = }
-- of a source text, its comments by line, and whether every block it
-- opened was closed (false: the lexer misread the file).
function M.scan(src)
  local toks, comments = lex(src)
  local stack, functions, lazy = {}, {}, {}
  local depth_fn = 0
  for k, t in ipairs(toks) do
    if t.kind == "name" then
      local w = t.text
      local prev = toks[k - 1]
      local member = prev and prev.kind == "sym" and (prev.text == "." or prev.text == ":")
      if member then
        -- a field named like a keyword cannot be one (t.end is an error anyway)
      elseif w == "function" then
        stack[#stack + 1] = { fn = true, line = t.line }
        depth_fn = depth_fn + 1
      elseif w == "do" or w == "if" or w == "repeat" then
        stack[#stack + 1] = { line = t.line }
      elseif w == "end" or w == "until" then
        local b = table.remove(stack)
        if b and b.fn then
          depth_fn = depth_fn - 1
          functions[#functions + 1] = { line = b.line, last = t.line, length = t.line - b.line + 1 }
        end
      elseif w == "require" and depth_fn > 0 then
        lazy[#lazy + 1] = { line = t.line }
      end
    end
  end
  return functions, lazy, comments, #stack == 0
end

return M
