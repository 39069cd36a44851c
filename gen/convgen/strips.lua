-- strips.lua: how a run of n pixels splits into strips, written once for the
-- planner (n known when it plans a row) and for the C that splits at run time
-- (the flat pointwise driver, the row microkernels).
--
-- Strips of the widest width w, then one narrower. With end_narrower, a last
-- strip of 1 to w - 2 pixels becomes strips of w - 1 instead, when there are
-- enough full strips to give up: w a + r = w (a - (w - 1) + r) + (w - 1)(w - r).
-- A dense strip of r pixels keeps 2r accumulators: below 10 they cannot cover
-- the FMA latency, and a strip of 1 costs about what one of 5 does.
local M = {}

-- n pixels as runs {width, count}: full strips (their count may be 0), then
-- the narrower ones.
function M.split(n, w, end_narrower)
  local a, r = n // w, n % w
  local runs = { { width = w, count = a } }
  if end_narrower and r > 0 and r < w - 1 and a >= w - 1 - r then
    runs[1].count = a - (w - 1 - r)
    runs[2] = { width = w - 1, count = w - r }
    if runs[1].count == 0 then table.remove(runs, 1) end
  elseif r > 0 then
    runs[2] = { width = r, count = 1 }
  end
  return runs
end

-- C statements doing the same split at run time: pixels [first, first + n)
-- (C text each; first "0" or an int variable), p the pixel a strip starts at
-- (declared here). call(width) is the C statement of one strip at p; pad the
-- indentation.
function M.loop(w, end_narrower, first, n, call, pad)
  local out = {}
  local function add(s) out[#out + 1] = pad .. s end
  local stop = first == "0" and n or (first .. " + " .. n)
  local narrow = end_narrower and w > 2
  add("int p = " .. first .. ";")
  if narrow then
    add(string.format("/* a last strip of 1 to %d pixels: end in strips of %d instead", w - 2, w - 1))
    add(string.format(" * (%da + r = %d(a - %d + r) + %d(%d - r)) */", w, w, w - 1, w - 1, w))
    add(string.format("const int rest = %s %% %d, narrow = rest > 0 && rest < %d && %s >= %d * (%d - rest) ? %d - rest : 0;",
      n, w, w - 1, n, w - 1, w, w))
  end
  add(string.format("for (; p + %d <= %s; p += %d)", w, narrow and (stop .. " - " .. (w - 1) .. " * narrow") or stop, w))
  add("    " .. call(w))
  local top = w - 1 -- the widest strip the switch calls
  if narrow then
    add(string.format("for (; p + %d <= %s; p += %d)", w - 1, stop, w - 1))
    add("    " .. call(w - 1))
    top = w - 2
  end
  if top >= 1 then
    add("switch (" .. stop .. " - p) {")
    for k = top, 1, -1 do
      add("case " .. k .. ":")
      add("    " .. call(k))
      add("    break;")
    end
    add("default:")
    add("    break;")
    add("}")
  end
  return table.concat(out, "\n")
end

return M
