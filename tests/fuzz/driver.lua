-- driver.lua: the generator entry points the fuzz targets call, each
-- outcome sorted into "ok", "refused" (a diagnostic for the user) or
-- "internal" (any other Lua error: a bug, which the target turns into a crash).
local api = require("convgen.api")
local diag = require("convgen.diag")
local model = require("convgen.model")
local native = require("convgen.native")

local M = {}

-- Calls fn(...) and sorts the outcome; returns status, value.
local function classify(fn, ...)
  local ok, result = xpcall(fn, function(err)
    if diag.failure_of(err) then return err end
    return debug.traceback(tostring(err), 2)
  end, ...)
  if ok then return "ok", result end
  local d = diag.failure_of(result)
  if d then return "refused", d:format() end
  return "internal", result
end

-- A whole model: built with random weights of the shapes it asks for, then
-- generated. Returns "model" when that worked.
local function describe_model(desc, d)
  local status, result = classify(function()
    local m = model.build(desc, d, {
      weights = function(_, wanted)
        local out = {}
        for i, w in ipairs(wanted) do
          out[i] = native.random_tensor(w.shape, i)
          if w.name == "moving_variance" then -- a variance is positive
            local v = {}
            for k = 1, w.count do v[k] = math.abs(out[i]:get(k - 1)) + 0.5 end
            out[i] = native.tensor_from(w.shape, v)
          end
        end
        return out
      end,
      weights_label = "<random>",
    })
    d:check()
    local c = model.generate(m, d, { name = "fuzz_model", c_file = "fuzz_model.c", h_file = "fuzz_model.h",
                                     target = "scalar" })
    d:check()
    return c
  end)
  if status == "ok" then return "model", result end
  return status, result
end

-- Validates spec text; on success returns the fields a reference layer needs
-- (for a whole model: "model", after building and generating it).
function M.describe(text, label)
  local pstatus, parsed = classify(function() return { api.parse_spec({ spec = label, spec_text = text }) } end)
  if pstatus ~= "ok" then return pstatus, parsed end
  if model.is_model(parsed[1]) then return describe_model(parsed[1], parsed[2]) end
  local status, ir = classify(function()
    return (api.load_spec({ spec = label, spec_text = text }, parsed[1], parsed[2]))
  end)
  if status ~= "ok" then return status, ir end
  local info = {
    op = ir.op, rank = ir.rank, channels_first = ir.channels_first and 1 or 0,
    in_h = ir.in_h, in_w = ir.in_w, in_c = ir.in_c, out_h = ir.out_h, out_w = ir.out_w, out_c = ir.out_c,
    k_h = ir.k_h, k_w = ir.k_w, s_h = ir.s_h, s_w = ir.s_w, d_h = ir.d_h, d_w = ir.d_w,
    padding = ir.padding, filters = ir.filters or 0, groups = ir.groups, depth_multiplier = ir.depth_multiplier,
    use_bias = ir.use_bias and 1 or 0, activation = ir.activation, keras_version = ir.keras_version,
    macs = ir.macs, weights = {},
  }
  for i, w in ipairs(ir.weights) do
    info.weights[i] = { name = w.name, count = w.count, shape = w.shape }
  end
  return "ok", info
end

-- Generates standalone C; weights from weights_dir, else taken at run time.
function M.generate(text, label, target, unroll, weights_dir)
  local status, result = classify(api.generate, {
    spec = label, spec_text = text, name = "fuzz_layer", target = target, unroll = unroll,
    weights_dir = weights_dir, weights_at_runtime = weights_dir == nil, standalone = true,
    command = "fuzz",
  })
  if status ~= "ok" then return status, result end
  return "ok", result.c
end

return M
