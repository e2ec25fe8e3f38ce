-- The lab README's table of expected codes is generated; it must match
-- tests/integration/expected.lua (what the integration spec asserts).
describe("tests/lab/README.md", function()
  it("lists the codes the integration spec expects for every lab domain", function()
    -- run the generator in this process, catching what it prints
    local want, real_print = {}, print
    print = function(s) want[#want + 1] = s end
    local ok, err = pcall(assert(loadfile("scripts/gen-lab-codes")))
    print = real_print
    assert(ok, err)
    want = table.concat(want, "\n")
    local f = assert(io.open("tests/lab/README.md"))
    local readme = f:read("a")
    f:close()
    assert.truthy(readme:find(want, 1, true), "tests/lab/README.md is stale: run ./build/mxprobe scripts/gen-lab-codes")
  end)
end)
