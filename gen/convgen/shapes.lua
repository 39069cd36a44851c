-- shapes.lua: the one home of Keras output-size and padding arithmetic.
-- Every other module asks here; nothing else recomputes a pad.
local M = {}

local floor, max, min = math.floor, math.max, math.min

local function ceil_div(a, b) return (a + b - 1) // b end

-- Size of the kernel's footprint with dilation.
function M.effective_kernel(k, d)
  return (k - 1) * d + 1
end

-- Output size and padding of one spatial axis under Keras rules.
-- Returns {out, pad_before, pad_after}, or nil when the output would be empty.
--   valid:  out = floor((in - ke) / s) + 1
--   same:   out = ceil(in / s); the odd extra pad goes after (bottom, right)
--   causal: pad (k - 1) * d before only, then valid
function M.axis(padding, input, k, s, d)
  local ke = M.effective_kernel(k, d)
  if padding == "valid" then
    if input < ke then return nil end
    return { out = floor((input - ke) / s) + 1, pad_before = 0, pad_after = 0 }
  elseif padding == "same" then
    local out = ceil_div(input, s)
    local total = max((out - 1) * s + ke - input, 0)
    return { out = out, pad_before = total // 2, pad_after = total - total // 2 }
  elseif padding == "causal" then
    local pad = (k - 1) * d
    return { out = floor((input + pad - ke) / s) + 1, pad_before = pad, pad_after = 0 }
  end
  error("unknown padding " .. tostring(padding))
end

-- Taps [first, last) of output index o that land inside an input of size n.
function M.tap_range(o, s, d, k, pad_before, n)
  local start = o * s - pad_before -- input index of tap 0
  local first = start < 0 and ceil_div(-start, d) or 0
  local last = start <= n - 1 and min(k, (n - 1 - start) // d + 1) or 0
  if last < first then last = first end
  return first, last
end

-- Output indices [lo, hi) whose every tap is inside the input (the interior):
-- tap 0 at o * s - pad_before >= 0 and the last tap at
-- o * s - pad_before + (k - 1) * d <= n - 1.
function M.interior(out, s, d, k, pad_before, n)
  local lo = ceil_div(pad_before, s)
  local last_ok = n - 1 - (k - 1) * d + pad_before
  if last_ok < 0 then return 0, 0 end
  local hi = min(out, last_ok // s + 1)
  if hi <= lo then return 0, 0 end
  return lo, hi
end

return M
