-- microkernels.lua: writes the runtime's precompiled microkernels and their
-- header from the registry (templates/microkernels.lua), with plain lua5.4,
-- before the convgen program that embeds the generator exists.
-- usage: lua5.4 tools/microkernels.lua OUT.c OUT.h
package.path = "gen/?.lua;" .. package.path
package.preload["convgen.native"] = function()
  return {
    template = function(name)
      local f = io.open(name, "rb")
      if not f then return nil end
      local text = f:read("a")
      f:close()
      return text
    end,
  }
end
package.preload["convgen.microkernel_registry"] = function() return dofile("templates/microkernels.lua") end
local mk = require("convgen.microkernels")
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  assert(f:close())
end
write(assert(arg[1], "usage: microkernels.lua OUT.c OUT.h"), mk.runtime_source())
write(assert(arg[2], "usage: microkernels.lua OUT.c OUT.h"), mk.runtime_header())
