-- activations.lua: the one table of activation functions.
-- Each entry gives a C expression of the float `v` (applied per element at the
-- store), or an axis pass (softmax) applied to the last axis after the layer;
-- `avx2`, where present, is the same on a __m256 `v` (otherwise SIMD code
-- stores first and applies `expr` to the stored values).
-- `needs` lists the libm functions the expression calls; the JIT registers
-- exactly the functions in runtime/jit.c, and a test checks the two agree.
local M = {}

local format = string.format

local SELU_ALPHA = "1.67326324235437728481704f"
local SELU_SCALE = "1.05070098735548049341933f"

-- softplus written to stay finite for large |v|
local SOFTPLUS = "(v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v)))"

local TABLE = {
  linear = { expr = "v", avx2 = "v" },
  relu = { expr = "(v > 0.0f ? v : 0.0f)", avx2 = "_mm256_max_ps(v, _mm256_setzero_ps())" },
  relu6 = { expr = "(v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f)",
            avx2 = "_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(6.0f))" },
  sigmoid = { expr = "(1.0f / (1.0f + expf(-v)))", needs = { "expf" } },
  tanh = { expr = "tanhf(v)", needs = { "tanhf" } },
  elu = { expr = "(v > 0.0f ? v : expm1f(v))", needs = { "expm1f" } },
  selu = { expr = "(" .. SELU_SCALE .. " * (v > 0.0f ? v : " .. SELU_ALPHA .. " * expm1f(v)))",
           needs = { "expm1f" } },
  softplus = { expr = SOFTPLUS, needs = { "expf", "log1pf" } },
  softsign = { expr = "(v / (1.0f + fabsf(v)))", needs = { "fabsf" } },
  swish = { expr = "(v / (1.0f + expf(-v)))", needs = { "expf" } },
  gelu = { expr = "(0.5f * v * (1.0f + erff(v * 0.707106781186547524f)))", needs = { "erff" } },
  hard_sigmoid = { expr = "((v + 3.0f > 0.0f ? (v + 3.0f < 6.0f ? v + 3.0f : 6.0f) : 0.0f) / 6.0f)" },
  hard_swish = { expr = "(v * (v + 3.0f > 0.0f ? (v + 3.0f < 6.0f ? v + 3.0f : 6.0f) : 0.0f) / 6.0f)" },
  leaky_relu = { expr = "(v > 0.0f ? v : 0.2f * v)" },
  exponential = { expr = "expf(v)", needs = { "expf" } },
  mish = { expr = "(v * tanhf(" .. SOFTPLUS .. "))", needs = { "tanhf", "expf", "log1pf" } },
  softmax = { expr = "v", avx2 = "v", axis_pass = "softmax", needs = { "expf" } },
  log_softmax = { expr = "v", avx2 = "v", axis_pass = "log_softmax", needs = { "expf", "logf" } },
}

-- tf.keras (Keras 2) forms that differ from Keras 3.
local KERAS2 = {
  hard_sigmoid = { expr = "(0.2f * v + 0.5f > 0.0f ? (0.2f * v + 0.5f < 1.0f ? 0.2f * v + 0.5f : 1.0f) : 0.0f)" },
}

local ALIASES = { silu = "swish", hard_silu = "hard_swish" }

-- Canonical name of a Keras activation name, or nil if unknown.
-- None / "linear" / "" all mean no activation.
function M.canonical(name)
  if name == nil or name == "" or name == "None" then return "linear" end
  name = ALIASES[name] or name
  if TABLE[name] then return name end
  return nil
end

-- The entry for a canonical name under Keras major version 2 or 3.
function M.get(name, keras_version)
  if keras_version == 2 and KERAS2[name] then
    local e = {}
    for k, v in pairs(TABLE[name]) do e[k] = v end
    for k, v in pairs(KERAS2[name]) do e[k] = v end
    return e
  end
  return TABLE[name]
end

-- The C expression applying an entry (its `form`: "expr" by default, or
-- "avx2") to the variable `var`. Memoized: the emitter asks for the same few
-- accumulators thousands of times.
local applied = setmetatable({}, { __mode = "k" })
function M.apply(entry, var, form)
  form = form or "expr"
  local memo = applied[entry]
  if not memo then
    memo = { expr = {}, avx2 = {} }
    applied[entry] = memo
  end
  local expr = memo[form][var]
  if not expr then
    expr = entry[form]:gsub("%f[%w_]v%f[^%w_]", var)
    memo[form][var] = expr
  end
  return expr
end

-- The activation of Keras's ReLU layer, f(x) = clip(x > threshold ? x : 0,
-- 0, max_value) - negative_slope * max(threshold - x, 0) (Keras clips only when
-- max_value is given, and keeps x as is above a non-zero threshold), and of
-- LeakyReLU (max_value nil, threshold 0). Returns a display name and an entry:
-- the named entries where they coincide, else one with its constants in `expr`.
function M.relu_layer(max_value, negative_slope, threshold)
  local slope, t = negative_slope or 0, threshold or 0
  if t == 0 and slope == 0 and max_value == nil then return "relu", TABLE.relu end
  if t == 0 and slope == 0 and max_value == 6 then return "relu6", TABLE.relu6 end
  local lit = require("convgen.native").float_literal
  local pos = t ~= 0 and format("(v > %s ? v : 0.0f)", lit(t)) or "(v > 0.0f ? v : 0.0f)"
  if max_value ~= nil then
    pos = format("(%s < 0.0f ? 0.0f : (%s > %s ? %s : %s))", pos, pos, lit(max_value), lit(max_value), pos)
  end
  local expr, name = pos, "relu"
  if slope ~= 0 then
    expr = format("(%s - %s * (%s - v > 0.0f ? %s - v : 0.0f))", pos, lit(slope), lit(t), lit(t))
    if t == 0 and max_value == nil then
      expr = format("(v > 0.0f ? v : %s * v)", lit(slope))
    end
  end
  local parts = {}
  if max_value ~= nil then parts[#parts + 1] = "max_value " .. lit(max_value) end
  if slope ~= 0 then parts[#parts + 1] = "negative_slope " .. lit(slope) end
  if t ~= 0 then parts[#parts + 1] = "threshold " .. lit(t) end
  return name .. "(" .. table.concat(parts, ", ") .. ")", { expr = expr }
end

-- Every accepted name (aliases included), sorted, for error messages.
function M.names()
  local out = {}
  for k in pairs(TABLE) do out[#out + 1] = k end
  for k in pairs(ALIASES) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Every libm function some activation needs, sorted.
function M.needed_functions()
  local set, out = {}, {}
  for _, entries in ipairs({ TABLE, KERAS2 }) do
    for _, e in pairs(entries) do
      for _, f in ipairs(e.needs or {}) do set[f] = true end
    end
  end
  for f in pairs(set) do out[#out + 1] = f end
  table.sort(out)
  return out
end

return M
