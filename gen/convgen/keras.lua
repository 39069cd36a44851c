-- keras.lua: turns a Keras layer description into the validated IR.
-- This is the single place where specs are checked: every front-end (Keras
-- JSON, Lua specs, command-line overrides) hands over the same description
--   { class_name, config, input_shape, input_shape_field, file }
-- and gets the same errors.
local activations = require("convgen.activations")
local diag_mod = require("convgen.diag")
local shapes = require("convgen.shapes")

local M = {}

M.MAX_ELEMENTS = 2147483647 -- int indexing in generated code

local format, concat = string.format, table.concat
local type, pairs, ipairs, tointeger = type, pairs, ipairs, math.tointeger

------------------------------------------------------------------------------
-- Layer classes
------------------------------------------------------------------------------

local CLASSES = {
  Conv1D = { op = "conv", rank = 1 },
  Conv2D = { op = "conv", rank = 2 },
  DepthwiseConv1D = { op = "depthwise", rank = 1 },
  DepthwiseConv2D = { op = "depthwise", rank = 2 },
  SeparableConv1D = { op = "separable", rank = 1 },
  SeparableConv2D = { op = "separable", rank = 2 },
}
-- Older Keras spellings of the same layers.
local CLASS_ALIASES = {
  Convolution1D = "Conv1D", Convolution2D = "Conv2D",
  SeparableConvolution1D = "SeparableConv1D", SeparableConvolution2D = "SeparableConv2D",
}

-- True for the class names of the convolution layers convgen generates.
function M.is_conv_class(name)
  return CLASSES[CLASS_ALIASES[name] or name] ~= nil
end

-- The convolution classes, sorted, for messages.
function M.conv_classes()
  local names = {}
  for k in pairs(CLASSES) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- Fields that decide the math, per op (value: true = required).
local MATH_FIELDS = {
  common = { kernel_size = true, strides = false, padding = false, data_format = false,
             dilation_rate = false, activation = false, use_bias = false },
  conv = { filters = true, groups = false },
  depthwise = { depth_multiplier = false },
  separable = { filters = true, depth_multiplier = false },
}

-- Fields that cannot change inference results.
local IGNORED = {
  name = true, trainable = true, dtype = true, activity_regularizer = true,
  batch_input_shape = true, input_shape = true, batch_size = true, input_dim = true,
  reuse = true, autocast = true, registered_name = true,
}
local IGNORED_SUFFIXES = { "_initializer", "_regularizer", "_constraint" }

-- Fields that would change the math; accepted only at their neutral value.
local NEUTRAL = {
  lora_rank = function(v) return v == nil or v == 0 end,
  lora_alpha = function() return true end, -- only meaningful with lora_rank
  quantization_config = function(v) return v == nil end,
}

------------------------------------------------------------------------------
-- Field readers: each records an error naming the field and returns nil on bad input
------------------------------------------------------------------------------

-- A value as the user wrote it, JSON-like, for messages (depth-limited: Lua
-- specs can build cyclic tables).
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return diag_mod.quote(v) end
  if type(v) ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end -- JSON null
  if depth >= 3 then return "..." end
  local parts = {}
  if #v > 0 or next(v) == nil then
    for i = 1, #v do parts[i] = show(v[i], depth + 1) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = format("%s: %s", diag_mod.quote(k), show(v[k], depth + 1)) end
  return "{" .. concat(parts, ", ") .. "}"
end

-- Every size, stride, dilation and count is at most this, so that index
-- arithmetic in generated code (int) and here (64-bit) cannot overflow.
M.MAX_VALUE = 1 << 28

local function as_int(v)
  if type(v) == "number" then return tointeger(v) end
  return nil
end

-- A positive integer, or a list of `rank` of them; returns a list of rank ints.
local function int_tuple(diag, field, v, rank, minimum)
  if type(v) ~= "table" then v = { v } ; for i = 2, rank do v[i] = v[1] end end
  if #v ~= rank then
    diag:error(format("expected %d integer%s, got %s", rank, rank > 1 and "s" or "", show(v)), field)
    return nil
  end
  local out = {}
  for i = 1, rank do
    local n = as_int(v[i])
    if not n then
      diag:error(format("expected an integer, got %s", show(v[i])), field)
      return nil
    elseif n < minimum then
      diag:error(format("must be at least %d, got %d", minimum, n), field)
      return nil
    elseif n > M.MAX_VALUE then
      diag:error(format("must be at most %d, got %d", M.MAX_VALUE, n), field)
      return nil
    end
    out[i] = n
  end
  return out
end

local function positive_int(diag, field, v)
  local n = as_int(v)
  if not n then
    diag:error(format("expected an integer, got %s", show(v)), field)
  elseif n < 1 then
    diag:error(format("must be at least 1, got %d", n), field)
    n = nil
  elseif n > M.MAX_VALUE then
    diag:error(format("must be at most %d, got %d", M.MAX_VALUE, n), field)
    n = nil
  end
  return n
end

local function one_of(diag, field, v, choices)
  if type(v) ~= "string" then
    diag:error(format("expected a string, got %s", show(v)), field)
    return nil
  end
  local lower = v:lower()
  for _, c in ipairs(choices) do
    if c == lower then return c end
  end
  diag:error(format("unknown value %s; expected one of: %s", show(v), concat(choices, ", ")), field)
  return nil
end

-- Keras serializes an activation as a name, or a function as
-- {"class_name": "function", "config": name}; a layer object (LeakyReLU with
-- its own slope, say) is something else and is refused.
local function activation_name(diag, field, v)
  if type(v) == "table" then
    if type(v.config) ~= "string" or (v.class_name ~= nil and v.class_name ~= "function") then
      diag:error(format("an activation given as an object (%s) is not supported; give an activation name",
        show(v.class_name)), field)
      return nil
    end
    v = v.config
  end
  if v ~= nil and type(v) ~= "string" then
    diag:error(format("expected an activation name, got %s", show(v)), field)
    return nil
  end
  local name = activations.canonical(v)
  if not name then
    diag:error(format("unknown activation %s; known: %s", show(v), concat(activations.names(), ", ")), field)
  end
  return name
end

------------------------------------------------------------------------------
-- Lowering
------------------------------------------------------------------------------

local function ignorable(key)
  if IGNORED[key] then return true end
  for _, suffix in ipairs(IGNORED_SUFFIXES) do
    if key:sub(-#suffix) == suffix then return true end
  end
  return false
end

-- Checks every config key against what the class understands.
local function check_fields(diag, class, op, config)
  local known = {}
  for _, group in ipairs({ "common", op }) do
    for k, required in pairs(MATH_FIELDS[group]) do
      known[k] = true
      if required and config[k] == nil then
        diag:error(format("missing required field for %s", class), "config." .. k)
      end
    end
  end
  local keys = {}
  for k in pairs(config) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local field = "config." .. tostring(k)
    if type(k) ~= "string" then
      diag:error("field names must be strings", "config")
    elseif NEUTRAL[k] then
      if not NEUTRAL[k](config[k]) then
        diag:error(format("%s = %s changes the layer's math and is not supported", k, show(config[k])), field)
      end
    elseif not known[k] and not ignorable(k) then
      diag:warn(format("unknown field %s ignored", k), field)
    end
  end
end

-- Spatial sizes and channels from the Keras input shape (with or without batch).
local function input_dims(diag, desc, rank, channels_first)
  local shape, field = desc.input_shape, desc.input_shape_field or "build_config.input_shape"
  if shape == nil then
    diag:error("the input shape is unknown: give build_config.input_shape or --input-shape", field)
    return nil
  end
  if type(shape) ~= "table" then
    diag:error(format("expected a list, got %s", show(shape)), field)
    return nil
  end
  local n = #shape
  local first = 1
  if n == rank + 2 then
    first = 2 -- a leading batch size, given at run time
    local b = shape[1]
    local mt = type(b) == "table" and getmetatable(b)
    if not (mt and mt.__tostring) and not (as_int(b) and as_int(b) >= 1) then
      diag:error(format("the batch size must be null or a positive integer, got %s", show(b)), field)
      return nil
    end
  elseif n ~= rank + 1 then
    diag:error(format("expected %d sizes (batch, %s), got %s", rank + 2,
      rank == 1 and (channels_first and "channels, length" or "length, channels")
                 or (channels_first and "channels, height, width" or "height, width, channels"),
      show(shape)), field)
    return nil
  end
  local dims = {}
  for i = first, n do
    local v = as_int(shape[i])
    if not v or v < 1 then
      diag:error(format("input sizes other than batch must be positive integers, got %s", show(shape)), field)
      return nil
    elseif v > M.MAX_VALUE then
      diag:error(format("input sizes must be at most %d, got %s", M.MAX_VALUE, show(shape)), field)
      return nil
    end
    dims[#dims + 1] = v
  end
  local c, spatial
  if channels_first then
    c, spatial = dims[1], { table.unpack(dims, 2) }
  else
    c, spatial = dims[#dims], { table.unpack(dims, 1, #dims - 1) }
  end
  if rank == 1 then return { h = 1, w = spatial[1], c = c } end
  return { h = spatial[1], w = spatial[2], c = c }
end

local function keras_shape(rank, channels_first, h, w, c)
  local spatial = rank == 1 and { w } or { h, w }
  local out = {}
  if channels_first then out[1] = c end
  for _, v in ipairs(spatial) do out[#out + 1] = v end
  if not channels_first then out[#out + 1] = c end
  return out
end

-- Builds the IR of one layer from a description; returns nil after recording
-- errors in diag. options: keras_version (2 or 3), extra_pads ({top, bottom,
-- left, right}: zeros a model's ZeroPadding layer adds in front of this one).
function M.lower(desc, diag, options)
  options = options or {}
  local class = desc.class_name
  if type(class) ~= "string" then
    diag:error("missing layer class name", "class_name")
    return nil
  end
  class = CLASS_ALIASES[class] or class
  local kind = CLASSES[class]
  if not kind then
    local names = {}
    for k in pairs(CLASSES) do names[#names + 1] = k end
    table.sort(names)
    diag:error(format("unsupported layer class %s; supported: %s", show(class), concat(names, ", ")), "class_name")
    return nil
  end
  local config = desc.config
  if type(config) ~= "table" then
    diag:error("missing layer config", "config")
    return nil
  end
  local op, rank = kind.op, kind.rank
  check_fields(diag, class, op, config)
  local dtype = config.dtype
  if type(dtype) == "table" then dtype = type(dtype.config) == "table" and dtype.config.name or dtype.name end
  if type(dtype) == "string" and dtype ~= "float32" then
    diag:warn(format("dtype %s: convgen computes in float32, Keras in lower precision; results differ slightly",
      show(dtype)), "config.dtype")
  end
  local errors_before = #diag.errors

  local function get(k, default)
    local v = config[k]
    if v == nil then return default end
    return v
  end
  local ir = { class_name = class, op = op, rank = rank, name = get("name", nil),
               keras_version = options.keras_version or 3 }
  if type(ir.name) ~= "string" then ir.name = nil end

  local kernel = int_tuple(diag, "config.kernel_size", get("kernel_size", 1), rank, 1)
  local strides = int_tuple(diag, "config.strides", get("strides", 1), rank, 1)
  local dilation = int_tuple(diag, "config.dilation_rate", get("dilation_rate", 1), rank, 1)
  local paddings = rank == 1 and { "valid", "same", "causal" } or { "valid", "same" }
  local padding = get("padding", "valid")
  if rank == 2 and type(padding) == "string" and padding:lower() == "causal" then
    diag:error("padding 'causal' is only for 1D layers", "config.padding")
    padding = nil
  else
    padding = one_of(diag, "config.padding", padding, paddings)
  end
  local data_format = one_of(diag, "config.data_format", get("data_format", "channels_last"),
    { "channels_last", "channels_first" })
  local act = activation_name(diag, "config.activation", config.activation)
  local use_bias = get("use_bias", true)
  if type(use_bias) ~= "boolean" then
    diag:error(format("expected true or false, got %s", show(use_bias)), "config.use_bias")
  end
  local filters = op ~= "depthwise" and positive_int(diag, "config.filters", get("filters", 1)) or nil
  local dm = op ~= "conv" and positive_int(diag, "config.depth_multiplier", get("depth_multiplier", 1)) or 1
  local groups = op == "conv" and positive_int(diag, "config.groups", get("groups", 1)) or 1

  if strides and dilation then
    local s_big, d_big = false, false
    for i = 1, rank do
      s_big = s_big or strides[i] > 1
      d_big = d_big or dilation[i] > 1
    end
    if s_big and d_big then
      diag:error(format("strides > 1 together with dilation_rate > 1 is not allowed by Keras (strides %s, dilation_rate %s)",
        show(strides), show(dilation)), "config.dilation_rate")
    end
  end

  local channels_first = data_format == "channels_first"
  local input = data_format and input_dims(diag, desc, rank, channels_first)
  if #diag.errors > errors_before or not (kernel and strides and dilation and padding and input) then
    return nil
  end
  if op == "conv" and groups and filters then
    if input.c % groups ~= 0 then
      diag:error(format("input channels (%d) must be divisible by groups (%d)", input.c, groups), "config.groups")
    end
    if filters % groups ~= 0 then
      diag:error(format("filters (%d) must be divisible by groups (%d)", filters, groups), "config.groups")
    end
  end

  for i = 1, rank do
    if shapes.effective_kernel(kernel[i], dilation[i]) > M.MAX_VALUE then
      diag:error(format("the kernel's extent (kernel_size - 1) * dilation_rate + 1 = %d is more than %d",
        shapes.effective_kernel(kernel[i], dilation[i]), M.MAX_VALUE), "config.dilation_rate")
      return nil
    end
  end

  -- Spatial axes: 1D layers are 2D layers of height 1 whose kernel is 1 high.
  local k = rank == 1 and { 1, kernel[1] } or kernel
  local s = rank == 1 and { 1, strides[1] } or strides
  local d = rank == 1 and { 1, dilation[1] } or dilation
  local in_hw = { input.h, input.w }
  -- Zero padding folded in from a model's ZeroPadding layer: the layer sees
  -- the padded input, whose zeros become more pad on each side.
  local zeros = options.extra_pads or { 0, 0, 0, 0 } -- top, bottom, left, right
  local axes, axis_names = {}, rank == 1 and { "", "length" } or { "height", "width" }
  for i = 1, 2 do
    local before, after = zeros[2 * i - 1], zeros[2 * i]
    local a = shapes.axis(i == 1 and padding == "causal" and "valid" or padding, in_hw[i] + before + after,
      k[i], s[i], d[i])
    if a then
      a.pad_before, a.pad_after = a.pad_before + before, a.pad_after + after
    end
    if not a then
      diag:error(format("input %s %d is smaller than the kernel's extent %d under 'valid' padding",
        axis_names[i], in_hw[i], shapes.effective_kernel(k[i], d[i])), desc.input_shape_field or "build_config.input_shape")
    end
    axes[i] = a
  end
  if not diag:ok() then return nil end

  local out_c = op == "depthwise" and input.c * dm or filters
  ir.data_format, ir.channels_first, ir.padding = data_format, channels_first, padding
  ir.in_h, ir.in_w, ir.in_c = input.h, input.w, input.c
  ir.out_h, ir.out_w, ir.out_c = axes[1].out, axes[2].out, out_c
  ir.k_h, ir.k_w, ir.s_h, ir.s_w, ir.d_h, ir.d_w = k[1], k[2], s[1], s[2], d[1], d[2]
  ir.pad_top, ir.pad_bottom = axes[1].pad_before, axes[1].pad_after
  ir.pad_left, ir.pad_right = axes[2].pad_before, axes[2].pad_after
  ir.groups, ir.depth_multiplier, ir.filters = groups, dm, filters
  ir.use_bias, ir.activation = use_bias, act
  ir.input_shape = keras_shape(rank, channels_first, ir.in_h, ir.in_w, ir.in_c)
  ir.output_shape = keras_shape(rank, channels_first, ir.out_h, ir.out_w, ir.out_c)

  -- Weights in Keras order and layout; `names` lists accepted file names.
  local taps = rank == 1 and { ir.k_w } or { ir.k_h, ir.k_w }
  local function shape_of(...)
    local t = {}
    for _, v in ipairs(taps) do t[#t + 1] = v end
    for _, v in ipairs({ ... }) do t[#t + 1] = v end
    return t
  end
  if op == "conv" then
    ir.weights = { { name = "kernel", names = { "kernel" }, shape = shape_of(ir.in_c // groups, filters) } }
  elseif op == "depthwise" then
    ir.weights = { { name = "kernel", names = { "kernel", "depthwise_kernel" }, shape = shape_of(ir.in_c, dm) } }
  else
    ir.weights = {
      { name = "depthwise_kernel", names = { "depthwise_kernel" }, shape = shape_of(ir.in_c, dm) },
      { name = "pointwise_kernel", names = { "pointwise_kernel" },
        shape = rank == 1 and { 1, ir.in_c * dm, filters } or { 1, 1, ir.in_c * dm, filters } },
    }
  end
  if use_bias then
    ir.weights[#ir.weights + 1] = { name = "bias", names = { "bias" }, shape = { out_c } }
  end

  -- Generated code indexes with int: every tensor must stay below 2^31 elements.
  -- (Counted in floating point, which cannot wrap around.)
  local sizes = { { "input", 1.0 * ir.in_h * ir.in_w * ir.in_c }, { "output", 1.0 * ir.out_h * ir.out_w * out_c } }
  for _, w in ipairs(ir.weights) do
    local n = 1.0
    for _, v in ipairs(w.shape) do n = n * v end
    sizes[#sizes + 1] = { w.name, n }
    w.count = tointeger(n) -- nil past 2^53, refused just below
  end
  for _, entry in ipairs(sizes) do
    if entry[2] > M.MAX_ELEMENTS then
      diag:error(format("%s has %.0f elements per batch item; at most %d are supported",
        entry[1], entry[2], M.MAX_ELEMENTS), desc.input_shape_field or "build_config.input_shape")
    end
  end
  if not diag:ok() then return nil end

  -- How the geometry reads in reports and provenance comments.
  local function axes2(h, w) return rank == 1 and tostring(w) or (h .. "x" .. w) end
  local extra = ""
  if op == "conv" and groups > 1 then extra = format(", groups %d", groups) end
  if op ~= "conv" then extra = format(", depth_multiplier %d", dm) end
  ir.geometry_text = format("kernel %s, strides %s, dilation %s%s", axes2(ir.k_h, ir.k_w),
    axes2(ir.s_h, ir.s_w), axes2(ir.d_h, ir.d_w), extra)
  local label = options.extra_pads and (padding .. " with zero padding folded in") or padding
  ir.padding_text = rank == 1
    and format("%s: left %d, right %d", label, ir.pad_left, ir.pad_right)
    or format("%s: top %d, bottom %d, left %d, right %d", label, ir.pad_top, ir.pad_bottom,
      ir.pad_left, ir.pad_right)

  -- Multiply-adds, for reports and benchmarks.
  local pixels = ir.out_h * ir.out_w
  local taps_n = ir.k_h * ir.k_w
  if op == "conv" then
    ir.macs = pixels * out_c * taps_n * (ir.in_c // groups)
  elseif op == "depthwise" then
    ir.macs = pixels * out_c * taps_n
  else
    ir.macs = pixels * ir.in_c * dm * taps_n + pixels * ir.in_c * dm * filters
  end
  return ir
end

return M
