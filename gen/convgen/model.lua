-- model.lua: whole Keras models. A Sequential or Functional config becomes a
-- list of operations on tensors: convolutions (with BatchNormalization, zero
-- padding and activations folded in), Add, and stand-alone activations. Every
-- intermediate tensor gets a place in one arena, by liveness.
local activations = require("convgen.activations")
local diag_mod = require("convgen.diag")
local emit = require("convgen.emit")
local keras = require("convgen.keras")
local native = require("convgen.native")
local planner = require("convgen.planner")
local template = require("convgen.template")
local weights_mod = require("convgen.weights")

local M = {}

local format, concat = string.format, table.concat

local MODEL_CLASSES = { Sequential = true, Functional = true, Model = true }

-- The layers a model may hold besides the convolutions.
local OTHER_LAYERS = { "Activation", "Add", "BatchNormalization", "InputLayer", "LeakyReLU", "ReLU",
                       "ZeroPadding1D", "ZeroPadding2D" }

-- Arena places are rounded up to 16 floats (64 bytes): every tensor starts on a cache line.
local ALIGN = 16

-- True when a parsed JSON object describes a whole model.
function M.is_model(obj)
  return type(obj) == "table" and MODEL_CLASSES[obj.class_name] == true
end

local function is_array(v)
  return type(v) == "table" and (#v > 0 or next(v) == nil)
end

local function show(v)
  if type(v) == "string" then return diag_mod.quote(v) end
  if type(v) ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end -- JSON null
  local parts = {}
  for i = 1, #v do parts[i] = show(v[i]) end
  return "[" .. concat(parts, ", ") .. "]"
end

local dims = emit.dims

local function product(shape)
  local n = 1
  for _, v in ipairs(shape) do n = n * v end
  return n
end

-- The layer names a Functional layer reads, from its inbound_nodes (Keras 3:
-- keras tensors with a keras_history; Keras 2: [name, node, tensor, kwargs]).
local function inbound_names(layer, diag, field)
  local nodes = layer.inbound_nodes
  if nodes == nil or (is_array(nodes) and #nodes == 0) then return {} end
  if not is_array(nodes) then
    diag:error("expected a list", field .. ".inbound_nodes")
    return nil
  end
  if #nodes > 1 then
    diag:error(format("layer %s is called %d times; a shared layer is not supported", show(layer.name), #nodes),
      field .. ".inbound_nodes")
    return nil
  end
  local names = {}
  local function collect(v, depth)
    if type(v) ~= "table" or depth > 8 then return end
    if v.class_name == "__keras_tensor__" and type(v.config) == "table" then
      local history = v.config.keras_history
      if is_array(history) and type(history[1]) == "string" then names[#names + 1] = history[1] end
      return
    end
    if is_array(v) and type(v[1]) == "string" and math.type(v[2]) == "integer" then -- Keras 2
      names[#names + 1] = v[1]
      return
    end
    for _, x in ipairs(v) do collect(x, depth + 1) end
    if type(v.args) == "table" then collect(v.args, depth + 1) end
  end
  collect(nodes[1], 0)
  return names
end

-- The model's layers as { name, class, config, field, inputs = {names} } in
-- Keras's order (producers first), and the input and output layer names.
local function read_layers(obj, diag)
  local config = obj.config
  if type(config) ~= "table" or not is_array(config.layers) then
    diag:error("a model needs a list of layers", "config.layers")
    return nil
  end
  local layers, by_name = {}, {}
  for i, l in ipairs(config.layers) do
    local field = format("config.layers[%d]", i - 1)
    if type(l) ~= "table" or type(l.class_name) ~= "string" or type(l.config) ~= "table" then
      diag:error("expected a layer object with class_name and config", field)
      return nil
    end
    local name = l.name or l.config.name
    if type(name) ~= "string" then
      diag:error("a layer needs a name", field .. ".config.name")
      return nil
    end
    if by_name[name] then
      diag:error(format("two layers are named %s", show(name)), field .. ".config.name")
      return nil
    end
    local entry = { name = name, class = l.class_name, config = l.config, build_config = l.build_config,
                    field = field, position = i - 1 }
    layers[#layers + 1], by_name[name] = entry, entry
    if obj.class_name == "Sequential" then
      entry.inputs = i > 1 and { layers[i - 1].name } or {}
    else
      entry.inputs = inbound_names(l, diag, field)
      if not entry.inputs then return nil end
      for _, input in ipairs(entry.inputs) do
        if not by_name[input] or by_name[input] == entry then
          diag:error(format("layer %s reads %s, which is not an earlier layer", show(name), show(input)),
            field .. ".inbound_nodes")
          return nil
        end
      end
    end
  end
  if #layers == 0 then
    diag:error("the model has no layers", "config.layers")
    return nil
  end

  local inputs, outputs
  if obj.class_name == "Sequential" then
    if layers[1].class ~= "InputLayer" then
      -- The input shape is the first layer's, or the model's build shape.
      local shape = (type(layers[1].build_config) == "table" and layers[1].build_config.input_shape)
        or layers[1].config.batch_input_shape
        or (type(obj.build_config) == "table" and obj.build_config.input_shape)
        or config.build_input_shape
      local input_id = "input"
      while by_name[input_id] do input_id = input_id .. "_" end
      local input = { name = input_id, class = "InputLayer", config = { batch_shape = shape },
                      field = "config.layers[0].build_config.input_shape", position = -1, inputs = {} }
      table.insert(layers, 1, input)
      layers[2].inputs = { input_id }
    end
    inputs, outputs = { layers[1].name }, { layers[#layers].name }
  else
    local function ends(v, field)
      if not is_array(v) then
        diag:error("expected a list of [layer name, node, tensor]", field)
        return nil
      end
      if type(v[1]) == "string" then v = { v } end -- one input or output
      local names = {}
      for i, e in ipairs(v) do
        if not is_array(e) or type(e[1]) ~= "string" or not by_name[e[1]] then
          diag:error(format("expected [layer name, node, tensor] naming a layer, got %s", show(e)),
            format("%s[%d]", field, i - 1))
          return nil
        end
        names[#names + 1] = e[1]
      end
      return names
    end
    inputs = ends(config.input_layers, "config.input_layers")
    outputs = ends(config.output_layers, "config.output_layers")
    if not inputs or not outputs then return nil end
  end
  if #inputs ~= 1 or #outputs ~= 1 then
    diag:error(format("the model has %d inputs and %d outputs; one of each is supported", #inputs, #outputs),
      #inputs ~= 1 and "config.input_layers" or "config.output_layers")
    return nil
  end
  return layers, inputs[1], outputs[1]
end

-- A number field of a layer config, or the default.
local function number(diag, layer, key, default)
  local v = layer.config[key]
  if v == nil then return default end
  if type(v) ~= "number" then
    diag:error(format("expected a number, got %s", show(v)), layer.field .. ".config." .. key)
    return default
  end
  return v
end

-- ZeroPadding1D/2D: the zeros added as {top, bottom, left, right}.
local function zero_pads(diag, layer, rank)
  local field = layer.field .. ".config.padding"
  local v = layer.config.padding
  if v == nil then v = 1 end
  local function int(x)
    if math.type(x) ~= "integer" or x < 0 or x > keras.MAX_VALUE then
      diag:error(format("expected a non-negative integer, got %s", show(x)), field)
      return 0
    end
    return x
  end
  local function pair(x)
    if math.type(x) == "integer" then return int(x), int(x) end
    if is_array(x) and #x == 2 then return int(x[1]), int(x[2]) end
    diag:error(format("expected an integer or a pair, got %s", show(x)), field)
    return 0, 0
  end
  if rank == 1 then
    local l, r = pair(v)
    return { 0, 0, l, r }
  end
  if math.type(v) == "integer" then return { int(v), int(v), int(v), int(v) } end
  if is_array(v) and #v == 2 then
    local t, b = pair(v[1])
    local l, r = pair(v[2])
    return { t, b, l, r }
  end
  diag:error(format("expected an integer, [height, width] or [[top, bottom], [left, right]], got %s", show(v)), field)
  return { 0, 0, 0, 0 }
end

-- The activation a layer applies: a name and, for parameterised ReLUs, an entry.
local function activation_of(diag, layer)
  local c = layer.config
  if layer.class == "Activation" then
    local name = activations.canonical(c.activation)
    if not name then
      diag:error(format("unknown activation %s", show(c.activation)), layer.field .. ".config.activation")
      return nil
    end
    return name, nil
  elseif layer.class == "ReLU" then
    local max_value = c.max_value
    if max_value ~= nil and type(max_value) ~= "number" then
      diag:error(format("expected a number or null, got %s", show(max_value)), layer.field .. ".config.max_value")
      return nil
    end
    return activations.relu_layer(max_value, number(diag, layer, "negative_slope", 0),
      number(diag, layer, "threshold", 0))
  end
  -- LeakyReLU: Keras 3 says negative_slope, Keras 2 alpha; the default is 0.3 in both
  local slope = c.negative_slope ~= nil and number(diag, layer, "negative_slope", 0.3)
    or number(diag, layer, "alpha", 0.3)
  return activations.relu_layer(nil, slope, 0)
end

-- Builds the model from its parsed config. opts: weights (function(layer name,
-- wanted, diag) -> list of tensors in Keras order, or nil after recording why
-- in diag), weights_label (what
-- to name in messages: the model file or weights directory), keras_version.
-- Returns the model, or nil after recording errors in diag.
function M.build(obj, diag, opts)
  local layers, input_name, output_name = read_layers(obj, diag)
  if not layers then return nil end
  local kv = opts.keras_version or 3

  -- Who reads each layer's output (the model's output counts as a reader).
  local readers = {}
  for _, l in ipairs(layers) do readers[l.name] = {} end
  for _, l in ipairs(layers) do
    for _, i in ipairs(l.inputs) do table.insert(readers[i], l) end
  end
  table.insert(readers[output_name], { name = "<output>", class = "<output>" })

  local node = {}    -- layer name -> the node computing it (after folding: an earlier one)
  local ops = {}     -- what runs, in order
  local shape_of = {} -- node -> its output's Keras shape without the batch
  local model = { name = type(obj.config.name) == "string" and obj.config.name or nil, layers = layers, ops = ops }

  local function fail(layer, message, field)
    diag:error(message, field and (layer.field .. "." .. field) or layer.field)
  end
  local function only_reader(l)
    return #readers[l.name] == 1 and readers[l.name][1] or nil
  end

  for _, l in ipairs(layers) do
    local class = l.class
    local ins = {}
    for i, name in ipairs(l.inputs) do ins[i] = node[name] end
    if class == "InputLayer" or l.name == input_name then
      if class ~= "InputLayer" or l.name ~= input_name then
        fail(l, format("the model has one input, %s; layer %s (%s) cannot be another", show(input_name),
          show(l.name), class))
        return nil
      end
      local shape = l.config.batch_shape or l.config.batch_input_shape
      if not is_array(shape) or #shape < 2 then
        fail(l, format("expected the input shape with its batch, e.g. [null, 32, 32, 3], got %s", show(shape)),
          l.position >= 0 and "config.batch_shape" or nil)
        return nil
      end
      local s = {}
      for i = 2, #shape do
        if math.type(shape[i]) ~= "integer" or shape[i] < 1 or shape[i] > keras.MAX_VALUE then
          fail(l, format("every size but the batch must be an integer from 1 to %d, got %s", keras.MAX_VALUE,
            show(shape)),
            l.position >= 0 and "config.batch_shape" or nil)
          return nil
        end
        s[#s + 1] = shape[i]
      end
      local n = { kind = "input", layer = l }
      shape_of[n], node[l.name], model.input = s, n, n
      model.input_shape = s
    elseif #ins == 0 or (class ~= "Add" and #ins ~= 1) then
      fail(l, format("%s %s reads %d tensors", class, show(l.name), #ins), "inbound_nodes")
      return nil
    elseif keras.is_conv_class(class) then
      local src = ins[1]
      local extra
      if src.kind == "pad" then
        extra, src = src.pads, src.input
      end
      local in_shape = { require("convgen.frontend_json").NULL } -- the batch
      for _, v in ipairs(shape_of[src]) do in_shape[#in_shape + 1] = v end
      local scoped = diag:scoped(l.field)
      local ir = keras.lower({ class_name = class, config = l.config, input_shape = in_shape,
                               input_shape_field = "build_config.input_shape" },
        scoped, { keras_version = kv, extra_pads = extra })
      if not ir then return nil end
      ir.name = l.name
      local n = { kind = "conv", layer = l, ir = ir, input = src, notes = {} }
      if extra then n.notes[#n.notes + 1] = "zero padding folded in" end
      ops[#ops + 1], node[l.name], shape_of[n] = n, n, ir.output_shape
    elseif class == "ZeroPadding1D" or class == "ZeroPadding2D" then
      local rank = class == "ZeroPadding1D" and 1 or 2
      local reader = only_reader(l)
      if not reader or not keras.is_conv_class(reader.class) then
        fail(l, format("%s %s must be read by one convolution only, into whose padding it is folded", class,
          show(l.name)))
        return nil
      end
      local s = shape_of[ins[1]]
      local format_name = l.config.data_format or "channels_last"
      local reader_format = reader.config.data_format or "channels_last"
      if #s ~= rank + 1 or format_name ~= reader_format then
        fail(l, format("%s %s does not match the shape %s or data_format of the convolution after it",
          class, show(l.name), show(s)))
        return nil
      end
      local pads = zero_pads(diag, l, rank)
      local out = {}
      for i, v in ipairs(s) do out[i] = v end
      local first = format_name == "channels_first" and 2 or 1
      if rank == 2 then
        out[first], out[first + 1] = s[first] + pads[1] + pads[2], s[first + 1] + pads[3] + pads[4]
      else
        out[first] = s[first] + pads[3] + pads[4]
      end
      local n = { kind = "pad", layer = l, input = ins[1], pads = pads }
      node[l.name], shape_of[n] = n, out
    elseif class == "BatchNormalization" then
      local src = ins[1]
      local s = shape_of[src]
      local axis = l.config.axis
      if is_array(axis) and #axis == 1 then axis = axis[1] end
      local cf = src.kind == "conv" and src.ir.channels_first
      local channel_axis = cf and 1 or #s -- in Keras's numbering with the batch at 0
      if axis == nil then axis = -1 end
      if math.type(axis) ~= "integer" or (axis ~= channel_axis and axis ~= channel_axis - #s - 1) then
        fail(l, format("axis %s is not the channel axis", show(l.config.axis)), "config.axis")
        return nil
      end
      local why
      if src.kind ~= "conv" or src.bn then
        why = format("it follows %s (%s), not a convolution", show(src.layer.name), src.layer.class)
      elseif src.activation or src.ir.activation ~= "linear" then
        why = format("the convolution %s applies its activation first", show(src.layer.name))
      elseif only_reader(src.layer) ~= l then
        why = format("other layers read the convolution %s too", show(src.layer.name))
      end
      if why then
        fail(l, format("BatchNormalization %s can only be folded into the weights of the convolution "
          .. "right before it: %s", show(l.name), why))
        return nil
      end
      src.bn = l
      src.notes[#src.notes + 1] = "BatchNormalization " .. l.name .. " folded in"
      node[l.name] = src
    elseif class == "Activation" or class == "ReLU" or class == "LeakyReLU" then
      local src = ins[1]
      local name, entry = activation_of(diag, l)
      if not name then return nil end
      -- fused when it alone reads a convolution's (or its BatchNormalization's)
      -- or an Add's output, and that has no activation yet
      local e = entry or activations.get(name, kv)
      -- an axis pass (softmax) needs a convolution's rows; an Add's loop is elementwise
      local fusable = (src.kind == "conv" or (src.kind == "add" and not e.axis_pass)) and not src.activation
        and (src.kind ~= "conv" or src.ir.activation == "linear") and only_reader(src.bn or src.layer) == l
      if fusable then
        src.activation = { name = name, entry = entry }
        src.notes[#src.notes + 1] = format("%s %s fused", class, l.name)
        node[l.name] = src
      else
        if e.axis_pass then
          fail(l, format("%s %s: %s must directly follow a convolution it can be fused into", class,
            show(l.name), name))
          return nil
        end
        local n = { kind = "activation", layer = l, inputs = { src }, activation = { name = name, entry = e },
                    notes = {} }
        ops[#ops + 1], node[l.name], shape_of[n] = n, n, shape_of[src]
      end
    elseif class == "Add" then
      if #ins < 2 then
        fail(l, format("Add %s needs at least two inputs, got %d", show(l.name), #ins), "inbound_nodes")
        return nil
      end
      for i = 2, #ins do
        if dims(shape_of[ins[i]]) ~= dims(shape_of[ins[1]]) then
          fail(l, format("Add %s: the shapes [%s] and [%s] differ", show(l.name), dims(shape_of[ins[1]]),
            dims(shape_of[ins[i]])), "inbound_nodes")
          return nil
        end
      end
      local n = { kind = "add", layer = l, inputs = ins, notes = {} }
      ops[#ops + 1], node[l.name], shape_of[n] = n, n, shape_of[ins[1]]
    elseif MODEL_CLASSES[class] then
      fail(l, format("layer %s is a nested model (%s); flatten it into one model", show(l.name), class))
      return nil
    else
      local supported = keras.conv_classes()
      for _, c in ipairs(OTHER_LAYERS) do supported[#supported + 1] = c end
      table.sort(supported)
      fail(l, format("layer %d, %s (%s), is not supported; supported: %s", l.position, show(l.name), class,
        concat(supported, ", ")), "class_name")
      return nil
    end
  end

  model.output = node[output_name]
  model.output_shape = shape_of[model.output]
  if model.output == model.input then
    diag:error("the model computes nothing: its output is its input", "config.output_layers")
    return nil
  end
  for _, op in ipairs(ops) do op.shape = shape_of[op] end
  -- Generated code indexes with int: no tensor may reach 2^31 elements.
  for _, n in ipairs({ model.input, table.unpack(ops) }) do
    local count = 1.0
    for _, v in ipairs(shape_of[n]) do count = count * v end
    if count > keras.MAX_ELEMENTS then
      fail(n.layer, format("%s has %.0f elements per batch item; at most %d are supported", show(n.layer.name),
        count, keras.MAX_ELEMENTS))
      return nil
    end
  end
  if not M.attach_weights(model, diag, opts) then return nil end
  M.plan_arena(model)
  return model
end

-- Loads every convolution's weights, folds BatchNormalization into them and
-- settles each convolution's activation. Returns true, or false after errors.
function M.attach_weights(model, diag, opts)
  for _, op in ipairs(model.ops) do
    if op.kind == "conv" then
      local ir, l = op.ir, op.layer
      local tensors = opts.weights(l.name, ir.weights, diag:scoped(l.field)) -- nil: it said why
      local ok = tensors ~= nil
      if ok and #tensors ~= #ir.weights then
        diag:error_in(opts.weights_label, format("layer %s has %d weight tensors; %s %s needs %d", show(l.name),
          #tensors, l.class, show(l.name), #ir.weights), l.field)
        ok = false
      elseif ok then
        for i, w in ipairs(ir.weights) do
          if weights_mod.show_shape(tensors[i]:shape()) ~= weights_mod.show_shape(w.shape) then
            diag:error_in(opts.weights_label, format("%s of layer %s has the shape %s; expected %s", w.name,
              show(l.name), weights_mod.show_shape(tensors[i]:shape()), weights_mod.show_shape(w.shape)), l.field)
            ok = false
          end
        end
      end
      if ok and op.bn then ok = M.fold_batch_norm(op, tensors, diag, opts) end
      if ok then
        op.tensors = tensors
        if op.activation then
          ir.activation, ir.activation_entry = op.activation.name, op.activation.entry
        end
      end
    end
  end
  return diag:ok()
end

-- Folds the BatchNormalization after a convolution into its weights:
-- y = gamma (x - mean) / sqrt(var + eps) + beta, x = w * in + b, gives
-- w' = w * s and b' = (b - mean) s + beta with s = gamma / sqrt(var + eps),
-- per output channel (the last axis of every Keras kernel, the pointwise one
-- for separable layers).
function M.fold_batch_norm(op, tensors, diag, opts)
  local bn, ir = op.bn, op.ir
  local c = bn.config
  local eps = c.epsilon
  if eps == nil then eps = 1e-3 end
  if type(eps) ~= "number" or eps < 0 then
    diag:error(format("expected a non-negative number, got %s", show(c.epsilon)), bn.field .. ".config.epsilon")
    return false
  end
  local scale, center = c.scale ~= false, c.center ~= false
  local names = {}
  if scale then names[#names + 1] = "gamma" end
  if center then names[#names + 1] = "beta" end
  names[#names + 1] = "moving_mean"
  names[#names + 1] = "moving_variance"
  local n = ir.out_c
  local wanted = {}
  for i, name in ipairs(names) do wanted[i] = { name = name, names = { name }, shape = { n }, count = n } end
  local bn_tensors = opts.weights(bn.name, wanted, diag:scoped(bn.field))
  if not bn_tensors then return false end
  if #bn_tensors ~= #names then
    diag:error_in(opts.weights_label, format("BatchNormalization %s has %d weight tensors; expected %d (%s)",
      show(bn.name), #bn_tensors, #names, concat(names, ", ")), bn.field)
    return false
  end
  local v = {}
  for i, name in ipairs(names) do
    local t = bn_tensors[i]
    if weights_mod.show_shape(t:shape()) ~= weights_mod.show_shape({ n }) then
      diag:error_in(opts.weights_label, format("%s of %s has the shape %s; expected (%d,)", name, show(bn.name),
        weights_mod.show_shape(t:shape()), n), bn.field)
      return false
    end
    v[name] = t
  end
  local s, b = {}, {}
  local bias_index = ir.use_bias and #ir.weights or nil
  for ch = 0, n - 1 do
    local gamma = scale and v.gamma:get(ch) or 1.0
    local beta = center and v.beta:get(ch) or 0.0
    local var = v.moving_variance:get(ch)
    if var + eps <= 0 then
      diag:error_in(opts.weights_label, format("moving_variance + epsilon of %s is not positive at channel %d",
        show(bn.name), ch), bn.field)
      return false
    end
    s[ch + 1] = gamma / math.sqrt(var + eps)
    local bias = bias_index and tensors[bias_index]:get(ch) or 0.0
    b[ch + 1] = (bias - v.moving_mean:get(ch)) * s[ch + 1] + beta
  end
  local scale_tensor = native.tensor_from({ n }, s)
  local kernel_index = ir.op == "separable" and 2 or 1
  tensors[kernel_index] = tensors[kernel_index]:scaled_columns(scale_tensor)
  local bias_tensor = native.tensor_from({ n }, b)
  if bias_index then
    tensors[bias_index] = bias_tensor
  else
    ir.use_bias = true
    ir.weights[#ir.weights + 1] = { name = "bias", names = { "bias" }, shape = { n }, count = n }
    tensors[#tensors + 1] = bias_tensor
  end
  return true
end

-- Places every intermediate tensor in one arena: a tensor lives from the
-- operation that writes it to the last one that reads it, and takes the
-- lowest place that overlaps no tensor alive at the same time (first fit, in
-- order). The model's input and output are the caller's buffers.
function M.plan_arena(model)
  local last_read = {}
  for i, op in ipairs(model.ops) do
    local ins = op.inputs or { op.input }
    for _, src in ipairs(ins) do last_read[src] = i end
  end
  local live = {} -- {op, offset, size}
  local peak = 0
  for i, op in ipairs(model.ops) do
    op.size = product(op.shape)
    if op == model.output then
      op.place = "output"
    else
      local kept = {}
      for _, t in ipairs(live) do
        if (last_read[t.op] or 0) >= i then kept[#kept + 1] = t end
      end
      live = kept
      table.sort(live, function(a, b) return a.offset < b.offset end)
      local size = (op.size + ALIGN - 1) // ALIGN * ALIGN
      local offset = 0
      for _, t in ipairs(live) do
        if offset + size <= t.offset then break end
        offset = math.max(offset, t.offset + t.size)
      end
      live[#live + 1] = { op = op, offset = offset, size = size }
      op.place, op.offset = "arena", offset
      peak = math.max(peak, offset + size)
    end
  end
  model.arena_size = peak
end

-- A C identifier from a layer name, unique among those already taken.
local function identifier(name, taken)
  -- one underscore at a time: "__" separates a function from its helpers
  local id = name:gsub("[^%w_]", "_"):gsub("__+", "_")
  if id:match("^%d") then id = "_" .. id end
  local base, k = id, 2
  while taken[id] do
    id = base .. "_" .. k
    k = k + 1
  end
  taken[id] = true
  return id
end

-- Generates the model's C source and header. info: name, c_file, h_file,
-- target, spec, command. Returns c, h, or nil after recording errors in diag.
-- Sets op.code_bytes on each operation.
function M.generate(model, diag, info)
  local kv = info.keras_version or 3
  local sources, steps, calls, taken, avx2 = {}, {}, {}, {}, false
  local function ref(t)
    if t == model.input then return "in" end
    if t.place == "output" then return "out" end
    return "arena + " .. t.offset
  end
  for i, op in ipairs(model.ops) do
    if info.progress then info.progress(i, #model.ops, op.layer.name) end
    local fname = info.name .. "__" .. identifier(op.layer.name, taken)
    op.fname = fname
    if op.kind == "conv" then
      local plan, err, field = planner.plan(op.ir, { target = info.target, unroll = "default" })
      if not plan then
        diag:error(err, op.layer.field .. (field and field:match("^config") and ("." .. field) or ""))
        return nil
      end
      avx2 = avx2 or plan.target == "avx2"
      op.plan = plan
      local c = emit.emit(op.ir, plan, op.tensors, { name = fname, in_model = true, plan = plan,
        note = #op.notes > 0 and concat(op.notes, "; ") or nil })
      op.code_bytes = #c
      sources[#sources + 1] = c:gsub("\n$", "")
      calls[#calls + 1] = format("%s(%s, %s, 1);", fname, ref(op.input), ref(op))
    else
      local params, terms, args = {}, {}, {}
      for k, src in ipairs(op.inputs) do
        params[k] = format("const float *restrict x%d", k - 1)
        terms[k] = format("x%d[i]", k - 1)
        args[k] = ref(src)
      end
      params[#params + 1] = "float *restrict y"
      args[#args + 1] = ref(op)
      local act = op.activation or { name = "linear" }
      local entry = act.entry or activations.get(act.name, kv)
      local what = format("%s %s", diag_mod.printable(op.layer.class), diag_mod.quote(op.layer.name))
      if op.kind == "add" and act.name ~= "linear" then what = what .. ", then " .. act.name end
      if op.kind == "activation" then what = what .. ": " .. act.name end
      local step = concat({
        format("/* %s */", emit.comment_text(diag_mod.printable(what))),
        format("static void %s(%s)", fname, concat(params, ", ")),
        "{",
        format("    for (ptrdiff_t i = 0; i < %d; ++i) {", op.size),
        format("        const float v = %s;", concat(terms, " + ")),
        format("        y[i] = %s;", activations.apply(entry, "v")),
        "    }",
        "}",
      }, "\n")
      steps[#steps + 1] = step
      op.code_bytes = #step
      calls[#calls + 1] = format("%s(%s);", fname, concat(args, ", "))
    end
  end

  local NAME = info.name:upper()
  local function provenance(file)
    local lines = {
      format("%s: Keras model \"%s\" (%d layers), generated by convgen %s. Do not edit.", file,
        diag_mod.printable(tostring(model.name or info.name)), #model.layers, emit.VERSION),
      "",
      "Spec:      " .. (info.spec or "<memory>"),
      "Generated: " .. (info.command or "convgen"),
      "Compile:   cc -std=c99 -O2 " .. (avx2 and "-mavx2 -mfma " or "") .. "-c " .. info.c_file
        .. "   (link with -lm)",
      "",
      format("input   [batch, %s]", dims(model.input_shape)),
      format("output  [batch, %s]", dims(model.output_shape)),
      format("arena   %d floats", model.arena_size),
    }
    for _, op in ipairs(model.ops) do
      lines[#lines + 1] = format("  %-24s %-18s [%s]%s", diag_mod.printable(op.layer.name),
        diag_mod.printable(op.layer.class), dims(op.shape),
        op.notes and #op.notes > 0 and ("  (" .. concat(op.notes, "; ") .. ")") or "")
    end
    for i, l in ipairs(lines) do lines[i] = diag_mod.printable(l) end
    return emit.comment_lines(lines)
  end
  local ctx = {
    name = info.name, NAME = NAME, header_name = info.h_file:match("[^/]*$"), avx2 = avx2,
    layer_sources = sources, steps = steps, calls = calls, arena_size = model.arena_size,
    ptrdiff = "ptrdiff_t", provenance = provenance(info.c_file:match("[^/]*$")),
    guard = "CONVGEN_" .. NAME .. "_H", input_shape = dims(model.input_shape),
    output_shape = dims(model.output_shape), in_size = product(model.input_shape),
    out_size = product(model.output_shape),
  }
  local c = template.render("templates/model.c.in", ctx)
  ctx.provenance = provenance(info.h_file:match("[^/]*$"))
  ctx.usage = concat({
    format(" *     static float input[BATCH * %s_INPUT_SIZE], output[BATCH * %s_OUTPUT_SIZE];", NAME, NAME),
    format(" *     static float arena[%s_ARENA_SIZE + 1];", NAME),
    " *     ... fill input ...",
    format(" *     %s(input, output, BATCH, arena);", info.name),
  }, "\n")
  return c, template.render("templates/model.h.in", ctx)
end

return M
