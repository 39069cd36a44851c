-- unrolled.lua: the statements of a fully unrolled layer (--unroll full):
-- one sum of products per output element, only over taps inside the input,
-- weights as float literals when baked. The planner caps its size.
local shapes = require("convgen.shapes")
local native = require("convgen.native")

local M = {}

local format, concat = string.format, table.concat

-- Returns a list of C statements computing one batch item (in -> out), using
-- a float `v` for each value before its activation, and the set of names the
-- statements read ("in", and weight names when passed at run time): a layer
-- whose taps all fall in the padding reads neither.
function M.statements(ir, p, tensors, at_runtime, act)
  local ins, outs = p.in_stride, p.out_stride
  local out, used = {}, {}
  local function weight(index, tensor_no, cname)
    if at_runtime then
      used[cname] = true
      return format("%s[%d]", cname, index)
    end
    return native.float_literal(tensors[tensor_no]:get(index))
  end
  local bias_no = #ir.weights
  local function bias(co)
    if not ir.use_bias then return nil end
    return weight(co, bias_no, "bias")
  end
  -- Sum of terms, starting from the bias when there is one.
  local function sum(terms, b)
    if b then table.insert(terms, 1, b) end
    if #terms == 0 then return "0.0f" end
    return concat(terms, "\n            + ")
  end
  local function emit_value(expr, target)
    out[#out + 1] = format("v = %s;", expr)
    out[#out + 1] = format("%s = %s;", target, act("v"))
  end
  local cin_g = ir.in_c // ir.groups
  local cout_g = ir.out_c // ir.groups
  local dm = ir.depth_multiplier
  for oh = 0, ir.out_h - 1 do
    local kh0, kh1 = shapes.tap_range(oh, ir.s_h, ir.d_h, ir.k_h, ir.pad_top, ir.in_h)
    for ow = 0, ir.out_w - 1 do
      local kw0, kw1 = shapes.tap_range(ow, ir.s_w, ir.d_w, ir.k_w, ir.pad_left, ir.in_w)
      local ih0, iw0 = oh * ir.s_h - ir.pad_top, ow * ir.s_w - ir.pad_left
      local pixel_out = oh * outs.h + ow * outs.w
      -- Products of one input channel's valid taps with kernel column `col` of `cname`.
      local function taps(c, kernel_index, tensor_no, cname)
        local terms = {}
        for kh = kh0, kh1 - 1 do
          for kw = kw0, kw1 - 1 do
            local x = (ih0 + kh * ir.d_h) * ins.h + (iw0 + kw * ir.d_w) * ins.w + c * ins.c
            used["in"] = true
            terms[#terms + 1] = format("in[%d] * %s", x, weight(kernel_index(kh * ir.k_w + kw), tensor_no, cname))
          end
        end
        return terms
      end
      out[#out + 1] = format("/* output pixel (%d, %d) */", oh, ow)
      if ir.op == "conv" then
        for co = 0, ir.out_c - 1 do
          local g = co // cout_g
          local terms = {}
          for ci = 0, cin_g - 1 do
            for _, t in ipairs(taps(g * cin_g + ci, function(tap) return (tap * cin_g + ci) * ir.out_c + co end, 1, "kernel")) do
              terms[#terms + 1] = t
            end
          end
          emit_value(sum(terms, bias(co)), format("out[%d]", pixel_out + co * outs.c))
        end
      elseif ir.op == "depthwise" then
        for c = 0, ir.in_c - 1 do
          for m = 0, dm - 1 do
            local terms = taps(c, function(tap) return (tap * ir.in_c + c) * dm + m end, 1, "kernel")
            emit_value(sum(terms, bias(c * dm + m)), format("out[%d]", pixel_out + (c * dm + m) * outs.c))
          end
        end
      else
        out[#out + 1] = "{"
        out[#out + 1] = format("    float mid[%d];", ir.in_c * dm)
        for c = 0, ir.in_c - 1 do
          for m = 0, dm - 1 do
            local terms = taps(c, function(tap) return (tap * ir.in_c + c) * dm + m end, 1, "depthwise_kernel")
            out[#out + 1] = format("    mid[%d] = %s;", c * dm + m, sum(terms))
          end
        end
        for co = 0, ir.filters - 1 do
          local terms = {}
          for k = 0, ir.in_c * dm - 1 do
            terms[#terms + 1] = format("mid[%d] * %s", k, weight(k * ir.filters + co, 2, "pointwise_kernel"))
          end
          out[#out + 1] = format("    v = %s;", sum(terms, bias(co)))
          out[#out + 1] = format("    out[%d] = %s;", pixel_out + co * outs.c, act("v"))
        end
        out[#out + 1] = "}"
      end
    end
  end
  return out, used
end

return M
