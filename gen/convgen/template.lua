-- template.lua: renders templates/*.c.in.
-- A line whose first non-blank character is `$` (not `${`) is Lua code;
-- every other line is text in which `${expr}` is replaced by the value of expr.
-- Templates see only the context they are given, plus `ipairs`, `pairs`,
-- `string`, `math`, `table`, `tostring` and `type`; reading an undefined name is an error.
local native = require("convgen.native")

local M = {}

local format, concat = string.format, table.concat

local cache = {}

local function compile(name)
  local text = native.template(name)
  if not text then error("no template " .. name, 0) end
  -- Free names resolve in the context table passed as the chunk's second
  -- argument; _tostring and the _n counter keep the hot path off it.
  local code = { "local _tostring = tostring\nlocal _out, _ENV = ...\nlocal _n = 0\n" }
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    local lua = line:match("^%s*%$([^{].*)$") or line:match("^%s*%$$") and ""
    if lua then
      code[#code + 1] = lua .. "\n"
    else
      local pieces, pos = {}, 1
      while true do
        local s, e, expr = line:find("%${(.-)}", pos)
        if not s then break end
        if s > pos then pieces[#pieces + 1] = format("%q", line:sub(pos, s - 1)) end
        pieces[#pieces + 1] = "_tostring(" .. expr .. ")"
        pos = e + 1
      end
      pieces[#pieces + 1] = format("%q", line:sub(pos) .. "\n")
      code[#code + 1] = "_n = _n + 1; _out[_n] = " .. concat(pieces, " .. ") .. "\n"
    end
  end
  return concat(code)
end

-- C index arithmetic, simplified for readability: `expr * k` (k a number or
-- C text) and `expr + n` (n a number).
function M.times(expr, k)
  if k == 0 then return "0" end
  if k == 1 then return expr end
  if expr:find("[%+%-]") then expr = "(" .. expr .. ")" end
  return expr .. " * " .. k
end

function M.plus(expr, n)
  if n == 0 then return expr end
  if n < 0 then return expr .. " - " .. -n end
  return expr .. " + " .. n
end

-- What every template may use besides its context; any other name is an error.
local BASE = setmetatable({ ipairs = ipairs, pairs = pairs, string = string, math = math,
                            table = table, tostring = tostring, type = type, times = M.times, plus = M.plus }, {
  __index = function(_, k) error(format("template: undefined name '%s'", k), 2) end,
})

-- Renders template `name` (e.g. "templates/layer.c.in") with the fields of ctx.
-- ctx itself is the template's environment (its metatable is set to reach BASE).
function M.render(name, ctx)
  local chunk = cache[name]
  if not chunk then
    chunk = assert(load(compile(name), "=" .. name, "t", { tostring = tostring }))
    cache[name] = chunk
  end
  if getmetatable(ctx) == nil then setmetatable(ctx, { __index = BASE }) end
  local out = {}
  chunk(out, ctx)
  return concat(out)
end

return M
