--- mxprobe.runtime.config_errors: messages about Lua configuration files
-- (policies, check files) that name FILE:LINE: field and suggest the
-- nearest known name.  Shared by the policy validator and the check loader,
-- which is why it lives below both.
--
--   config_errors.read_lines(path)          source lines, comments stripped
--   config_errors.find_line(lines, segs)    the line where a field is written
--   config_errors.path_text(segs)           "a.b[2]" for a list of segments
--   config_errors.suggest(word, candidates) "; did you mean X?" or ""

local M = {}


-- The text of a line without its comment (a "--" outside quotes).
local function code_part(line)
    if not line:find("-", 1, true) then return line end -- most lines: no comment
    local q = nil
    local i = 1
    while i <= #line do
        local c = line:sub(i, i)
        if q then
            if c == "\\" then i = i + 1
            elseif c == q then q = nil end
        elseif c == '"' or c == "'" then
            q = c
        elseif c == "-" and line:sub(i + 1, i + 1) == "-" then
            return line:sub(1, i - 1)
        end
        i = i + 1
    end
    return line
end

local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

--- Source lines of a file (nil when unreadable), comments stripped.
-- The lines are read when first asked (lines[i], #lines, ipairs): only a
-- message needs them, and reading the default policy's 400 lines on every
-- start was most of the CPU before the first DNS question (bench/domain).
function M.read_lines(path)
    local f = io.open(path, "r")
    if not f then return nil end
    f:close()
    local loaded = false
    local function fill(t)
        loaded = true
        local g = io.open(path, "r")
        if not g then return end -- gone since: no line numbers, not an error
        local n = 0
        for l in g:lines() do n = n + 1; rawset(t, n, code_part(l)) end
        g:close()
    end
    return setmetatable({}, {
        __index = function(t, k)
            if loaded then return nil end
            fill(t)
            return rawget(t, k)
        end,
        __len = function(t)
            if not loaded then fill(t) end
            return rawlen(t)
        end,
    })
end

--- The line where a field (a list of path segments) is written in the
-- source: each segment is searched after the previous one's line, as
-- `name =`, `["name"] =`, or, for a segment { value = "x" }, as the
-- string literal "x".  Integer segments (list positions) keep the line of
-- their parent.  Returns the best line found, or nil.
function M.find_line(lines, segments)
    if not lines then return nil end
    local from, found = 1, nil
    for _, seg in ipairs(segments) do
        local pats
        if type(seg) == "string" then
            local e = pattern_escape(seg)
            pats = { "%f[%w_]" .. e .. "%s*=[^=]", "%f[%w_]" .. e .. "%s*=$", "%[%s*[\"']" .. e .. "[\"']%s*%]%s*=" }
        elseif type(seg) == "table" and seg.value ~= nil then
            local e = pattern_escape(tostring(seg.value))
            pats = { "[\"']" .. e .. "[\"']" }
        end
        if pats then
            local hit
            for i = from, #lines do
                for _, p in ipairs(pats) do
                    if lines[i]:find(p) then hit = i; break end
                end
                if hit then break end
            end
            if not hit then return found end
            from, found = hit, hit
        end
    end
    return found
end

function M.path_text(segments)
    local out = ""
    for _, s in ipairs(segments) do
        if type(s) == "string" then
            if s:match("^[%a_][%w_]*$") then
                out = out == "" and s or (out .. "." .. s)
            else
                out = out .. ("[%q]"):format(s)
            end
        elseif math.type(s) == "integer" then
            out = out .. ("[%d]"):format(s)
        end
    end
    return out
end

-- Edit distance, for "did you mean" (short names only).
local function distance(a, b)
    if #a > 40 or #b > 40 then return math.huge end
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
        local cur = { [0] = i }
        for j = 1, #b do
            local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
            cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev = cur
    end
    return prev[#b]
end

--- "; did you mean X?" for the nearest of candidates, or "".
function M.suggest(word, candidates)
    local best, bd = nil, math.huge
    word = tostring(word)
    for _, c in ipairs(candidates) do
        local d = distance(word:lower(), c:lower())
        if d < bd then best, bd = c, d end
    end
    if best and bd <= math.max(2, #word // 3) then return ("; did you mean %s?"):format(best) end
    return ""
end

return M
