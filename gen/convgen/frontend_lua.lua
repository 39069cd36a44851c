-- frontend_lua.lua: hand-written layer specs in Lua, run in a sandbox.
--
--   return SeparableConv2D {
--     input_shape = { 32, 32, 3 },        -- without the batch
--     filters = 16, kernel_size = 3, padding = "same", activation = "relu",
--   }
--
-- Field names are Keras's own. A spec is code, so it runs with no io, os,
-- require, load, dofile or string.dump, in text mode only (no bytecode), with
-- a bounded number of instructions and bounded memory.
local native = require("convgen.native")

local M = {}

local format, type, pairs = string.format, type, pairs

M.INSTRUCTION_LIMIT = 10000000
M.MEMORY_LIMIT = 64 * 1024 * 1024

local LAYER_CLASSES = {
  "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
}

-- Copies the named fields of a library table.
local function pick(lib, names)
  local t = {}
  for _, n in ipairs(names) do t[n] = lib[n] end
  return t
end

-- The sandbox: safe library functions, the layer constructors, and a
-- string library whose rep charges the bytes it makes to the instruction
-- budget (work done inside C is otherwise invisible to the count hook).
local function sandbox(charge)
  local safe_string = pick(string, { "byte", "char", "format", "len", "lower", "reverse", "sub", "upper" })
  local rep = string.rep
  safe_string.rep = function(s, n, sep)
    local len = #tostring(s) + (sep and #tostring(sep) or 0)
    if type(n) == "number" and n > 0 then charge(len * n) end
    return rep(s, n, sep)
  end
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    select = select, tonumber = tonumber, tostring = tostring, type = type,
    math = pick(math, { "abs", "ceil", "floor", "huge", "max", "maxinteger", "min",
                        "mininteger", "pi", "sqrt", "tointeger", "type" }),
    -- No pattern matching: a pathological pattern runs inside C, out of the hook's reach.
    string = safe_string,
    table = pick(table, { "concat", "insert", "remove", "sort", "unpack" }),
  }
  for _, class in ipairs(LAYER_CLASSES) do
    env[class] = function(config)
      if type(config) ~= "table" then error(class .. " expects a table of fields", 2) end
      return { class_name = class, config = config }
    end
  end
  return env, safe_string
end

-- Runs `text` (the contents of diag.file); records errors in diag.
function M.parse(text, diag)
  local instructions = 0
  local function charge(n)
    instructions = instructions + n
    if instructions > M.INSTRUCTION_LIMIT then
      error(format("spec ran for more than %d instructions", M.INSTRUCTION_LIMIT), 0)
    end
  end
  local env, safe_string = sandbox(charge)
  local chunk, err = load(text, "=" .. diag.file, "t", env)
  if not chunk then
    diag:error(format("Lua syntax error: %s", err), "lua")
    return nil
  end
  debug.sethook(function() charge(1000) end, "", 1000)
  -- ("").dump or ("x"):match would reach the real string library through the
  -- metatable strings share: point it at the sandbox's library while the spec runs.
  local string_meta = getmetatable("")
  local real_string = string_meta.__index
  string_meta.__index = safe_string
  native.set_memory_limit(M.MEMORY_LIMIT)
  local ok, result = pcall(chunk)
  native.set_memory_limit(nil)
  string_meta.__index = real_string
  debug.sethook()
  if not ok then
    -- error({}) would print an address that changes from run to run
    local msg = type(result) == "string" and result or format("(error object is a %s value)", type(result))
    if msg == "not enough memory" then
      msg = format("spec used more than %d MiB of memory", M.MEMORY_LIMIT // (1024 * 1024))
    end
    diag:error(format("Lua spec failed: %s", msg), "lua")
    return nil
  end
  if type(result) ~= "table" then
    diag:error("a Lua spec must return a layer, e.g. `return Conv2D { ... }`", "lua")
    return nil
  end
  local config = result.config
  if type(config) ~= "table" then
    diag:error("the returned table has no config; use a constructor like Conv2D { ... }", "config")
    return nil
  end
  -- Copy, so the sandbox's tables never reach the rest of the generator.
  local copy = {}
  for k, v in pairs(config) do copy[k] = v end
  local desc = { class_name = result.class_name, config = copy }
  if copy.input_shape ~= nil then
    desc.input_shape, desc.input_shape_field = copy.input_shape, "input_shape"
    copy.input_shape = nil
  end
  return desc
end

return M
