-- api.lua: the generator's entry points, shared by the command line, the
-- tests and the library: spec -> IR -> plan -> C.
local diag_mod = require("convgen.diag")
local frontend_json_mod = require("convgen.frontend_json")
local emit = require("convgen.emit")
local frontend_json = require("convgen.frontend_json")
local frontend_lua = require("convgen.frontend_lua")
local keras = require("convgen.keras")
local model_mod = require("convgen.model")
local native = require("convgen.native")
local planner = require("convgen.planner")
local weights = require("convgen.weights")

local M = {}

local format = string.format


-- Picks the front-end by extension, or by the first character for other names.
local function frontend_for(path, text)
  if path:match("%.json$") then return frontend_json end
  if path:match("%.lua$") then return frontend_lua end
  if text:match("^%s*{") then return frontend_json end
  return frontend_lua
end

-- Names a generated function cannot take: C99 keywords, main, and the C
-- library functions generated code or its users are likely to call.
local RESERVED = {}
for word in ([[auto break case char const continue default do double else enum extern float for
  goto if inline int long register restrict return short signed sizeof static struct switch typedef
  union unsigned void volatile while _Bool _Complex _Imaginary main
  abs exp expf expm1 expm1f log logf log1p log1pf tanh tanhf erf erff sqrt sqrtf fabs fabsf
  fmax fmaxf fmin fminf pow powf sin cos tan floor ceil round malloc free calloc realloc
  memcpy memset memmove printf exit abort]]):gmatch("%S+") do
  RESERVED[word] = true
end

-- True when s can name a generated function: an identifier, not reserved,
-- and not of the forms C reserves for the implementation (_X..., __...).
function M.usable_name(s)
  return s:match("^[%a_][%w_]*$") ~= nil and not RESERVED[s] and not s:match("^_[%u_]")
end

-- A usable C identifier made from s (a file stem or a Keras layer name).
local function identifier(s)
  s = s:gsub("[^%w_]", "_")
  if s:match("^%d") or s == "" or s:match("^_[%u_]") then s = "layer_" .. s end
  if RESERVED[s] then s = s .. "_layer" end
  return s
end
M.identifier = identifier

-- "1,32,32,3" or "None,32,32,3" -> list (JSON null for an unknown batch),
-- or nil and a message.
function M.parse_shape(text)
  local out = {}
  for item in (text .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if item == "None" or item == "?" or item == "null" or item == "-1" then
      out[#out + 1] = frontend_json_mod.NULL
    elseif item:match("^%d+$") and math.tointeger(tonumber(item)) then
      out[#out + 1] = math.tointeger(tonumber(item))
    else
      return nil, string.format("expects comma-separated sizes like 1,32,32,3, got '%s'", text)
    end
  end
  return out
end

-- Loads and validates a spec. opts: spec (path), spec_text (optional: the text,
-- with spec as its label), input_shape (list), keras_version.
-- Returns ir, diag; throws a diag failure on bad input.
function M.load_spec(opts, desc, diag)
  if not desc then desc, diag = M.parse_spec(opts) end
  if model_mod.is_model(desc) then
    diag:fail(format("%s is a whole model; this takes one layer", desc.class_name), "class_name")
  end
  if opts.input_shape then
    desc.input_shape, desc.input_shape_field = opts.input_shape, "--input-shape"
  end
  local ir = keras.lower(desc, diag, { keras_version = opts.keras_version })
  diag:check()
  return ir, diag
end

-- Loads weights for ir from opts.weights_dir (nil when none was given).
function M.load_weights(ir, opts, diag)
  if not opts.weights_dir then return nil end
  local tensors = weights.load(ir, opts.weights_dir, diag)
  diag:check()
  return tensors
end

-- Weights of a model's layers from a directory: DIR/<layer name>/<weight>.npy,
-- read and checked as a single layer's are.
local function directory_weights(dir)
  return function(layer, wanted, diag)
    local errors = #diag.errors
    local tensors = weights.load({ weights = wanted }, dir .. "/" .. layer, diag)
    return #diag.errors == errors and tensors or nil
  end
end

local function desc_class(obj) return tostring(obj.class_name) end

-- A whole model (Sequential or Functional): parsed spec text -> C.
-- opts.single_layer: why the caller cannot take a model (a command that runs one layer).
local function generate_model(obj, diag, opts)
  if opts.single_layer then
    diag:fail(format("%s is a whole model; %s", desc_class(obj), opts.single_layer), "spec")
  end
  if opts.weights_at_runtime then
    diag:fail("a model's weights are baked in: --weights-at-runtime is for single layers", "--weights-at-runtime")
  end
  local weights_fn, label = opts.model_weights, opts.model_file
  if not weights_fn then
    if not opts.weights_dir then
      diag:fail("a model needs its weights: give -w DIR holding DIR/<layer name>/<weight>.npy, "
        .. "or generate from the .keras file", "-w")
    end
    weights_fn, label = directory_weights(opts.weights_dir), opts.weights_dir
  end
  if opts.unroll and opts.unroll ~= "default" then
    diag:fail("--unroll full is for single layers", "--unroll")
  end
  local model = model_mod.build(obj, diag, { weights = weights_fn, weights_label = label,
                                             keras_version = opts.keras_version })
  diag:check()
  local target = opts.target
  if target == "native" then target = native.cpu_target() end
  local stem = opts.c_file and opts.c_file:match("([^/]*)%.c$")
  local name = opts.name or identifier(stem or model.name or "model")
  local c_file = opts.c_file or (name .. ".c")
  local h_file = opts.h_file or (c_file:gsub("%.c$", "") .. ".h")
  local c, h = model_mod.generate(model, diag, { name = name, c_file = c_file, h_file = h_file, target = target,
    spec = opts.spec, command = opts.command, keras_version = opts.keras_version, progress = opts.progress })
  if opts.progress then opts.progress() end
  diag:check()
  return { c = c, h = h, model = model, diag = diag, name = name, h_file = h_file, c_file = c_file }
end

-- Reads and parses a spec; returns the description and the collector. A model
-- file (.keras, .h5) gives its config and a weights function in opts.
local function parse_spec(opts)
  local file = opts.spec or "<spec>"
  local diag = diag_mod.new(file)
  local text = opts.spec_text
  if not text and (file:match("%.keras$") or file:match("%.h5$")) then
    local m, err = native.read_model(file)
    if not m then
      -- the reader's message starts with the file, which the diagnostic names already
      if err:sub(1, #file + 2) == file .. ": " then err = err:sub(#file + 3) end
      diag:fail(err, "spec")
    end
    text = m.config
    opts.model_file = file
    opts.model_weights = function(layer, _, layer_diag)
      local list = m.weights[layer]
      if not list then layer_diag:error_in(file, format("no weights for layer %s in the file", layer)) end
      return list
    end
    -- A legacy .h5 may come from Keras 2 or 3; Keras 3 configs name each class's module.
    if m.format == "h5" and not opts.keras_version and not text:find('"module"%s*:') then
      opts.keras_version = 2
    end
    local desc = frontend_json.parse(text, diag)
    diag:check()
    return desc, diag
  end
  if not text then
    local err
    text, err = native.read_file(file)
    if not text then diag:fail("cannot read spec: " .. err, "spec") end
  end
  local fe = frontend_for(file, text)
  local desc = fe.parse(text, diag)
  diag:check()
  return desc, diag
end
M.parse_spec = parse_spec

-- Generates C. opts: the load_spec options plus weights_dir, weights_at_runtime,
-- name, c_file, h_file, command, target, unroll, standalone.
-- Returns { c, h, ir, plan, diag, name, tensors } for a layer, { c, h, model,
-- diag, name } for a model; throws a diag failure on bad input.
function M.generate(opts)
  local desc, parsed_diag = parse_spec(opts)
  if opts.target == "hybrid" and not opts.standalone then
    parsed_diag:fail("the hybrid target calls microkernels that only the run-time library and convgen run link; "
      .. "generate scalar, avx2 or native", "--target")
  end
  if model_mod.is_model(desc) then return generate_model(desc, parsed_diag, opts) end
  local ir, diag = M.load_spec(opts, desc, parsed_diag)
  local tensors = M.load_weights(ir, opts, diag)
  if not tensors and not opts.weights_at_runtime then
    diag:fail("no weights: give -w DIR, or --weights-at-runtime", "-w")
  end
  local target = opts.target
  if target == "native" then target = native.cpu_target() end
  local plan, err, field = planner.plan(ir, { target = target, unroll = opts.unroll })
  if not plan then diag:fail(err, field) end
  local stem = opts.c_file and opts.c_file:match("([^/]*)%.c$")
  local name = opts.name or identifier(stem or ir.name or "layer")
  local c_file = opts.c_file or (name .. ".c")
  local h_file = opts.h_file or (c_file:gsub("%.c$", "") .. ".h")
  local c, h = emit.emit(ir, plan, tensors, {
    name = name, c_file = c_file:match("[^/]*$"), h_file = h_file,
    spec = opts.spec, weights_dir = opts.weights_dir, command = opts.command,
    weights_at_runtime = opts.weights_at_runtime, plan = plan, standalone = opts.standalone,
  })
  return { c = c, h = h, ir = ir, plan = plan, diag = diag, name = name,
           tensors = tensors, h_file = h_file, c_file = c_file }
end

-- For C callers: generate from spec text with weights as an argument.
-- Returns the standalone C source and the function name; raises a plain message on bad input.
function M.generate_text(spec_text, label, name, weights_dir, weights_at_runtime, unroll, keras_version, target)
  local ok, result = pcall(M.generate, {
    target = target,
    spec = label, spec_text = spec_text, name = name, weights_dir = weights_dir,
    weights_at_runtime = weights_at_runtime, unroll = unroll, keras_version = keras_version,
    command = "convgen (library)", standalone = true, single_layer = "the run-time library compiles one layer",
  })
  if not ok then
    local d = diag_mod.failure_of(result)
    error(d and d:format() or result, 0)
  end
  return result.c, result.name
end

-- For the library: what a kernel needs, with weights taken at run time.
-- Returns { source, name, input_shape, output_shape, input_size, output_size,
-- weights = { {name, count, shape} ... }, tensors (with weights_dir) }, or
-- nil, the message and its kind ("spec" or "weights").
function M.prepare(spec_text, label, input_shape_text, keras_version, weights_dir, target)
  local function message(err)
    local d = diag_mod.failure_of(err)
    return d and d:format() or tostring(err)
  end
  local input_shape
  if input_shape_text then
    local shape, err = M.parse_shape(input_shape_text)
    if not shape then return nil, "convgen: input_shape: error: " .. err .. " (input_shape)", "spec" end
    input_shape = shape
  end
  local ok, result = pcall(M.generate, {
    spec = label, spec_text = spec_text, input_shape = input_shape, keras_version = keras_version,
    weights_at_runtime = true, standalone = true, name = "convgen_layer", command = "libconvgen",
    single_layer = "the run-time library compiles one layer",
    target = target,
  })
  if not ok then return nil, message(result), "spec" end
  local ir = result.ir
  local info = {
    source = result.c, name = result.name, input_shape = ir.input_shape, output_shape = ir.output_shape,
    input_size = result.plan.in_size, output_size = result.plan.out_size, weights = {},
    -- SIMD strips read a packed copy, made by the generated <name>_pack
    packed_size = result.plan.simd and result.plan.simd.packed and result.plan.simd.packed.size or 0,
    rows_per_item = planner.rows_per_item(ir, result.plan), -- of the _rows entry point
    -- rows computed together: a Winograd layer's 2x2 output tiles
    row_granule = result.plan.simd and result.plan.simd.plane and result.plan.simd.plane.wino and 2 or 1,
  }
  -- the weight the pack function reads (0-based), and whether the code
  -- reads only its packed copy (the library then keeps no plain copy)
  local packed = result.plan.simd and result.plan.simd.packed
  info.packed_source, info.packed_only = -1, false
  -- How the pack function lays the weight out, where the runtime has the
  -- same layout (a hybrid driver calls its pack; a wino transform is one
  -- template): the library then compares a caller's weights with a cached
  -- kernel's packed copy in place. 0: only the pack function knows.
  info.pack_kind, info.pack_rows, info.pack_columns = 0, 0, 0
  if packed and packed.wino then
    info.pack_kind, info.pack_rows, info.pack_columns = 2, packed.ci, packed.columns
  elseif packed and result.plan.target == "hybrid" then
    info.pack_kind, info.pack_rows, info.pack_columns = 1, packed.rows, packed.columns
  end
  for i, w in ipairs(ir.weights) do
    info.weights[i] = { name = w.name, count = w.count, shape = weights.show_shape(w.shape) }
    if packed and w.name == packed.source then info.packed_source, info.packed_only = i - 1, not packed.plain_read end
  end
  if weights_dir then
    local loaded
    ok, loaded = pcall(M.load_weights, ir, { weights_dir = weights_dir }, result.diag)
    if not ok then return nil, message(loaded), "weights" end
    info.tensors = loaded
  end
  return info
end

return M
