-- driver.lua: the generator entry points the fuzz targets call, each
-- outcome sorted into "ok", "refused" (a diagnostic for the user) or
-- "internal" (any other Lua error: a bug, which the target turns into a crash).
local api = require("convgen.api")
local diag = require("convgen.diag")

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

-- Validates spec text; on success returns the fields a reference layer needs.
function M.describe(text, label)
  local status, ir = classify(function() return (api.load_spec({ spec = label, spec_text = text })) end)
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
