-- The precompiled Lua files (core/bytecode.c, scripts/compile-lua): the
-- build's bytecode is current for every source, a chunk from it is the
-- source's own (name, lines, environment), and an edited source is never
-- run from stale bytecode.
local paths = require "mxprobe.runtime.paths"
local lfs = require "lfs"

local function lua_files(dir, out)
    for f in lfs.dir(dir) do
        if f ~= "." and f ~= ".." then
            local p = dir .. "/" .. f
            if lfs.attributes(p, "mode") == "directory" then lua_files(p, out)
            elseif p:match("%.lua$") then out[#out + 1] = p end
        end
    end
    return out
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

describe("bytecode", function()
    it("is current for every module and stock check of this tree (else: rebuild)", function()
        assert.is_string(paths.bytecode, "no bytecode directory: the build makes build/luac")
        local stale = {}
        local files = lua_files(paths.lua, {})
        lua_files(paths.checks, files)
        for _, p in ipairs(files) do
            if not paths.bytecode_current(p) then stale[#stale + 1] = p end
        end
        assert.are.same({}, stale)
        assert.is_true(#files > 60)
    end)

    it("is what require and loadfile take for this tree's files", function()
        -- a module required in this run came from the bytecode: its source
        -- name is the file's, so tracebacks point into the source
        local f = require("mxprobe.engine.init").new
        local src = debug.getinfo(f, "S").source
        assert.are.equal("@" .. paths.lua .. "/mxprobe/engine/init.lua", src)
        assert.is_true(paths.bytecode_current(src:sub(2)))
        local env = {}
        local chunk = assert(loadfile(paths.checks .. "/mx.lua", "t", env))
        assert.are.equal("@" .. paths.checks .. "/mx.lua", debug.getinfo(chunk, "S").source)
        assert.are.equal(env, select(2, debug.getupvalue(chunk, 1)))
    end)

    describe("of a file outside the tree", function()
        local dir, src, bc
        before_each(function()
            dir = os.tmpname()
            os.remove(dir)
            assert(lfs.mkdir(dir))
            src = dir .. "/m.lua"
            bc = paths.bytecode .. "/_" .. src .. "c"
            local at = paths.bytecode .. "/_"
            for part in dir:gmatch("[^/]+") do
                at = at .. "/" .. part
                if not lfs.attributes(at) then assert(lfs.mkdir(at)) end
            end
        end)
        after_each(function()
            os.remove(bc)
            local at = paths.bytecode .. "/_" .. dir
            while #at > #paths.bytecode + 2 do
                lfs.rmdir(at)
                at = at:match("^(.*)/[^/]*$")
            end
            os.remove(src)
            lfs.rmdir(dir)
        end)

        it("keeps the source's name, lines and environment", function()
            write(src, "local x = ...\nreturn function()\n  error('boom ' .. tostring(y))\nend\n")
            assert(paths.compile(src, bc))
            assert.is_true(paths.bytecode_current(src))
            local chunk = assert(loadfile(src, "t", { tostring = tostring, error = error, y = "env" }))
            assert.are.equal("@" .. src, debug.getinfo(chunk, "S").source)
            local ok, err = pcall(chunk())
            assert.is_false(ok)
            assert.are.equal(src .. ":3: boom env", err)
        end)

        it("is not run once the source changed, even at the same length", function()
            write(src, "return 1\n")
            assert(paths.compile(src, bc))
            assert.are.equal(1, assert(loadfile(src))())
            write(src, "return 2\n")
            assert.is_false(paths.bytecode_current(src))
            assert.are.equal(2, assert(loadfile(src))())
        end)

        it("is not run when damaged or of another format", function()
            write(src, "return 3\n")
            assert(paths.compile(src, bc))
            local f = assert(io.open(bc, "rb"))
            local data = f:read("a")
            f:close()
            write(bc, data:sub(1, 40)) -- the header, a torn dump
            assert.is_false(paths.bytecode_current(src))
            assert.are.equal(3, assert(loadfile(src))())
            write(bc, "MXBC0\n" .. data:sub(7))
            assert.is_false(paths.bytecode_current(src))
            assert.are.equal(3, assert(loadfile(src))())
        end)
    end)

    it("leaves loadfile as it was for a file without bytecode", function()
        local p = os.tmpname()
        write(p, "return ...")
        assert.are.equal(7, assert(loadfile(p))(7))
        assert.is_nil(loadfile(p .. ".missing"))
        write(p, "return (")
        local chunk, err = loadfile(p)
        assert.is_nil(chunk)
        assert.are.equal(p .. ":1: unexpected symbol near <eof>", err)
        os.remove(p)
    end)
end)
