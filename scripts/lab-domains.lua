-- Print the name of every domain of the test world, one per line.
local world = dofile("tests/lab/world.lua")
local names = {}
for _, d in ipairs(world.domains or {}) do names[#names + 1] = d.name end
for _, n in ipairs(names) do print(n) end
