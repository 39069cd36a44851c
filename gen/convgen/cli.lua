-- cli.lua: the convgen command line. Exit status 0 on success, 1 for bad
-- input (a message naming the file and field), 2 for bad usage.
local api = require("convgen.api")
local diag_mod = require("convgen.diag")
local emit = require("convgen.emit")
local native = require("convgen.native")
local weights_mod = require("convgen.weights")

local M = {}

local format, concat = string.format, table.concat
local stdout, stderr = io.stdout, io.stderr

local USAGE = {
  main = [[
usage: convgen <command> [options]

Generates shape-specialized C for Keras convolution layers (Conv1D, Conv2D,
DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D) and for
whole models built from them.

commands:
  generate SPEC -w DIR -o layer.c   write C99 source and header for a layer
  generate MODEL -o model.c         ... or for a whole model (.keras, .h5)
  check SPEC [-w DIR]               validate and print shapes, pads, FLOPs, sizes
                                    (a model: a table of its operations and arena)
  run SPEC -w DIR -i IN.npy -o OUT.npy
                                    compile in-process with libtcc and run
  bench SPEC [-w DIR | --random-weights] [--backend tcc|cc|aot]
                                    time one layer; last line: median us per call
  help COMMAND                      the options of a command

SPEC is a Keras layer JSON (keras.layers.serialize) or a Lua spec (.lua);
MODEL a Keras model: .keras, .h5, or model.to_json() with -w DIR holding
DIR/<layer name>/<weight>.npy.
`convgen COMMAND --help` lists each command's options; `convgen --version`.
]],
  generate = [[
usage: convgen generate SPEC [-w DIR | --weights-at-runtime] [-o FILE.c] [options]

Writes a C99 source (and its header, beside it) with one function
  void NAME(const float *input, float *output, int batch)
holding the layer's weights as static const arrays; for a whole model
(.keras, .h5, or model.to_json() with -w DIR of DIR/<layer>/<weight>.npy)
  void NAME(const float *input, float *output, int batch, float *arena)
with NAME_ARENA_SIZE floats of scratch in the header.

options:
  -w, --weights DIR        .npy files named as Keras names the weights
                           (kernel, bias, depthwise_kernel, pointwise_kernel)
  --weights-at-runtime     take the weights as an extra argument instead:
                           NAME(input, output, batch, const float *const weights[])
  -o, --output FILE.c      output source (default: standard output, no header)
  --header FILE.h          header path (default: FILE.c with .h)
  --name NAME              function name (default: the output file's stem)
  --input-shape DIMS       input shape, e.g. 1,32,32,3 (overrides build_config)
  --keras-version 2|3      semantics where Keras versions differ (default 3:
                           hard_sigmoid is relu6(x + 3) / 6; 2: 0.2 x + 0.5)
  --unroll default|full    full: every loop unrolled with weights as literals,
                           for tiny layers only (at most 65536 multiply-adds)
  --target T               code target: scalar (default, portable C99), avx2
                           (AVX2 + FMA intrinsics: compile with -mavx2 -mfma),
                           or native (avx2 when this CPU has it, else scalar)
]],
  check = [[
usage: convgen check SPEC [-w DIR] [--input-shape DIMS] [--keras-version 2|3] [--unroll MODE]

Validates a spec (and its weights with -w) and prints the input and output
shapes, explicit pads, FLOPs, weight bytes and generated code size.
]],
  run = [[
usage: convgen run SPEC -w DIR -i INPUT.npy -o OUTPUT.npy [options]

Generates the layer, compiles it in-process with libtcc, runs it on the
input (shape [batch, ...] or one item without the batch axis) and writes a
float32 .npy of the output, batch axis included.

options:
  -w, --weights DIR        weights directory (see convgen generate --help)
  -i, --input FILE.npy     input, float32 or float64
  -o, --output FILE.npy    where to write the output
  --backend tcc|cc         compile in-process with libtcc (default: a driver
                           calling convgen's precompiled SIMD microkernels),
                           or the native target with the system C compiler
                           ($CC, default cc) and dlopen
  --input-shape DIMS, --keras-version 2|3    as for generate
]],
  bench = [[
usage: convgen bench SPEC [-w DIR | --random-weights] [--backend tcc|cc|aot] [--min-time S]

Times one layer, batch 1, and prints its figures; the last line is the
median microseconds per call. A program that prints, never a test.

options:
  -w, --weights DIR        weights directory (see convgen generate --help)
  --random-weights         uniform random weights instead
  --backend B              tcc: in-process libtcc, a driver calling the
                           precompiled microkernels (default);
                           cc or aot (the same): the native target built by
                           the system compiler, weights passed at run time
  --min-time S             time calls for at least S seconds (default 1)
  --input-shape DIMS, --keras-version 2|3    as for generate
]],
}

-- Options per command: flag -> { key, takes_value }
local OPTIONS = {
  generate = {
    ["-w"] = { "weights_dir", true }, ["--weights"] = { "weights_dir", true },
    ["--weights-at-runtime"] = { "weights_at_runtime", false },
    ["-o"] = { "c_file", true }, ["--output"] = { "c_file", true },
    ["--header"] = { "h_file", true }, ["--name"] = { "name", true },
    ["--input-shape"] = { "input_shape", true }, ["--keras-version"] = { "keras_version", true },
    ["--unroll"] = { "unroll", true }, ["--target"] = { "target", true },
  },
  check = {
    ["-w"] = { "weights_dir", true }, ["--weights"] = { "weights_dir", true },
    ["--input-shape"] = { "input_shape", true }, ["--keras-version"] = { "keras_version", true },
    ["--unroll"] = { "unroll", true }, ["--target"] = { "target", true },
  },
  bench = {
    ["-w"] = { "weights_dir", true }, ["--weights"] = { "weights_dir", true },
    ["--random-weights"] = { "random_weights", false }, ["--backend"] = { "backend", true },
    ["--min-time"] = { "min_time", true },
    ["--input-shape"] = { "input_shape", true }, ["--keras-version"] = { "keras_version", true },
  },
  run = {
    ["-w"] = { "weights_dir", true }, ["--weights"] = { "weights_dir", true },
    ["-i"] = { "input", true }, ["--input"] = { "input", true },
    ["-o"] = { "output", true }, ["--output"] = { "output", true },
    ["--input-shape"] = { "input_shape", true }, ["--keras-version"] = { "keras_version", true },
    ["--backend"] = { "backend", true },
  },
}

-- A usage error: exit status 2.
local UsageError = {}
local function usage_error(command, message)
  error(setmetatable({ command = command, message = message }, UsageError), 0)
end

local function parse_shape(command, text)
  local shape, err = api.parse_shape(text)
  if not shape then usage_error(command, "--input-shape " .. err) end
  return shape
end

local function parse_args(command, argv, first)
  local opts, positional = {}, {}
  local table_ = OPTIONS[command]
  local i = first
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then
      opts.help = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local flag, inline = a:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or a
      local spec = table_[flag]
      if not spec then usage_error(command, format("unknown option %s", a)) end
      if spec[2] then
        local v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
        end
        if v == nil then usage_error(command, format("%s needs a value", flag)) end
        opts[spec[1]] = v
      else
        opts[spec[1]] = true
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if opts.help then return opts, positional end
  if #positional ~= 1 then
    usage_error(command, #positional == 0 and "missing SPEC" or format("unexpected argument %s", positional[2]))
  end
  opts.spec = positional[1]
  if opts.input_shape then opts.input_shape = parse_shape(command, opts.input_shape) end
  if opts.keras_version then
    local v = math.tointeger(tonumber(opts.keras_version))
    if v ~= 2 and v ~= 3 then usage_error(command, "--keras-version must be 2 or 3") end
    opts.keras_version = v
  end
  if opts.name and not api.usable_name(opts.name) then
    usage_error(command, format("--name must be a C identifier that is not a keyword, a C library name "
      .. "or reserved, got '%s'", opts.name))
  end
  return opts, positional
end

local function command_line(argv)
  local parts = { "convgen" }
  for i = 1, #argv do
    local a = argv[i]
    if a:match("[^%w%-_./=,:+]") then a = "'" .. a:gsub("'", "'\\''") .. "'" end
    parts[#parts + 1] = a
  end
  return concat(parts, " ")
end

------------------------------------------------------------------------------
-- Commands
------------------------------------------------------------------------------

local commands = {}

-- On a terminal, a model's generation shows which operation it is at, on
-- one line of stderr that is cleared at the end.
local function terminal_progress()
  if not native.isatty(2) then return nil end
  local width = 0
  return function(i, n, what)
    local text = i and format("convgen: generating %d/%d: %s", i, n, diag_mod.printable(what)) or ""
    io.stderr:write("\r", text, string.rep(" ", math.max(width - #text, 0)), i and "" or "\r")
    width = #text
    io.stderr:flush()
  end
end

-- generate: spec -> .c and .h
function commands.generate(opts, argv)
  opts.progress = terminal_progress()
  if opts.c_file and not opts.c_file:match("[^/]%.c$") then
    usage_error("generate", "-o must name a .c file")
  end
  if opts.h_file and opts.c_file and opts.h_file == opts.c_file then
    usage_error("generate", "--header must differ from -o")
  end
  opts.command = command_line(argv)
  local result = api.generate(opts)
  if not opts.c_file then
    stdout:write(result.c)
    return result.diag
  end
  -- Both files or neither: write temporaries, then rename them into place.
  local outputs = {
    { path = result.h_file, text = result.h, field = opts.h_file and "--header" or "-o" },
    { path = opts.c_file, text = result.c, field = "-o" },
  }
  -- A rename can fail only where a directory stands in the way: look first,
  -- so that the first file is never replaced when the second cannot be.
  for _, o in ipairs(outputs) do
    if native.is_directory(o.path) then
      result.diag:error_in(o.path, "cannot write output: it is a directory", o.field)
    end
  end
  result.diag:check()
  local pending = {}
  for _, o in ipairs(outputs) do
    local tmp, err = native.write_temp(o.path, o.text)
    if tmp == nil then
      for _, q in ipairs(pending) do os.remove(q.tmp) end
      result.diag:error_in(o.path, "cannot write output: " .. err, o.field)
      result.diag:check()
    elseif tmp then
      pending[#pending + 1] = { tmp = tmp, path = o.path, field = o.field }
    end
  end
  for i, q in ipairs(pending) do
    local ok, err = os.rename(q.tmp, q.path)
    if not ok then
      for k = i, #pending do os.remove(pending[k].tmp) end
      result.diag:error_in(q.path, "cannot write output: " .. tostring(err), q.field)
      result.diag:check()
    end
  end
  return result.diag
end

-- check: validate and report
-- check on a whole model: one row per operation, then the totals.
local function check_model(opts, result)
  local model = result.model
  local function shape(s) return "[" .. concat(s, ", ") .. "]" end
  local rows = { { "#", "layer", "class", "output", "MFLOPs", "weights", "code", "arena", "folded in" } }
  local flops, weight_bytes, code_bytes = 0, 0, 0
  for i, op in ipairs(model.ops) do
    local f, w
    w = 0
    if op.kind == "conv" then
      f = 2 * op.ir.macs
      for _, t in ipairs(op.tensors) do
        local n = 1
        for _, v in ipairs(t:shape()) do n = n * v end
        w = w + 4 * n
      end
    else
      f = op.size * #(op.inputs)
    end
    flops, weight_bytes, code_bytes = flops + f, weight_bytes + w, code_bytes + (op.code_bytes or 0)
    local place = op.place == "output" and "output" or format("%d+%d", op.offset, op.size)
    rows[#rows + 1] = { tostring(i), diag_mod.printable(op.layer.name), diag_mod.printable(op.layer.class),
      shape(op.shape), format("%.3f", f / 1e6), tostring(w), tostring(op.code_bytes or 0), place,
      diag_mod.printable(concat(op.notes or {}, "; ")) }
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for k, v in ipairs(r) do widths[k] = math.max(widths[k] or 0, #v) end
  end
  local lines = {
    format("spec        %s", opts.spec),
    format("model       %s, %d layers -> %d operations", diag_mod.quote(tostring(model.name or result.name)),
      #model.layers, #model.ops),
    format("input       [batch, %s]", concat(model.input_shape, ", ")),
    format("output      [batch, %s]", concat(model.output_shape, ", ")),
    "",
  }
  for _, r in ipairs(rows) do
    local cells = {}
    for k, v in ipairs(r) do
      local numeric = k == 1 or (k >= 5 and k <= 7)
      cells[k] = numeric and string.rep(" ", widths[k] - #v) .. v or v .. string.rep(" ", widths[k] - #v)
    end
    lines[#lines + 1] = (concat(cells, "  "):gsub("%s+$", ""))
  end
  local io_floats = 0
  for _, s in ipairs({ model.input_shape, model.output_shape }) do
    local n = 1
    for _, v in ipairs(s) do n = n * v end
    io_floats = io_floats + n
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = format("FLOPs       %d per batch item", flops)
  lines[#lines + 1] = format("weights     %d bytes (baked in)", weight_bytes)
  lines[#lines + 1] = format("code        %d bytes of C + %d bytes of header", #result.c, #result.h)
  lines[#lines + 1] = format("arena       %d floats (%d bytes); peak memory with input and output %d bytes "
    .. "per batch item", model.arena_size, 4 * model.arena_size, 4 * (model.arena_size + io_floats))
  stdout:write(concat(lines, "\n"), "\n")
  return result.diag
end

function commands.check(opts)
  opts.weights_at_runtime = not opts.weights_dir
  local desc = api.parse_spec(opts)
  if require("convgen.model").is_model(desc) then
    opts.weights_at_runtime = false
    return check_model(opts, api.generate(opts))
  end
  local result = api.generate(opts)
  local ir = result.ir
  local function shape(s) return "[batch, " .. concat(s, ", ") .. "]" end
  local lines = {}
  local function row(k, v) lines[#lines + 1] = format("%-11s %s", k, v) end
  row("spec", opts.spec)
  row("layer", format("%s %s", ir.class_name, diag_mod.quote(ir.name or result.name)))
  row("input", shape(ir.input_shape) .. " " .. ir.data_format)
  row("output", shape(ir.output_shape))
  row("kernel", (ir.geometry_text:gsub("^kernel ", "")))
  row("padding", ir.padding_text)
  row("activation", format("%s, bias %s", ir.activation, ir.use_bias and "yes" or "no"))
  row("FLOPs", format("%d per batch item (%d multiply-adds)", 2 * ir.macs, ir.macs))
  local total, parts = 0, {}
  for _, w in ipairs(ir.weights) do
    total = total + w.count
    parts[#parts + 1] = w.name .. " " .. weights_mod.show_shape(w.shape)
  end
  row("weights", format("%d bytes (%d floats): %s", 4 * total, total, concat(parts, ", ")))
  row("code", format("%d bytes of C + %d bytes of header (%s)", #result.c, #result.h,
    opts.weights_dir and "weights baked in" or "weights as an argument; give -w to bake them"))
  stdout:write(concat(lines, "\n"), "\n")
  return result.diag
end

-- run: generate, compile with libtcc, run on an input .npy
function commands.run(opts)
  opts.single_layer = "convgen run takes one layer: generate the model with convgen generate and compile it"
  if not opts.weights_dir then usage_error("run", "missing -w DIR") end
  if not opts.input then usage_error("run", "missing -i INPUT.npy") end
  if not opts.output then usage_error("run", "missing -o OUTPUT.npy") end
  local backend = opts.backend or "tcc"
  if backend ~= "tcc" and backend ~= "cc" then usage_error("run", "--backend must be tcc or cc") end
  opts.weights_at_runtime, opts.standalone = true, true
  opts.target = backend == "cc" and "native" or "hybrid" -- tcc drives the precompiled microkernels
  local result = api.generate(opts)
  local ir, diag = result.ir, result.diag
  local input, err = native.read_npy(opts.input)
  if not input then diag:error_in(opts.input, err, "-i") ; diag:check() end
  local got, want = input:shape(), ir.input_shape
  local batched = #got == #want + 1
  local match = batched or #got == #want
  local off = batched and 1 or 0
  for i = 1, #want do match = match and got[i + off] == want[i] end
  if not match then
    diag:error_in(opts.input, format("input shape %s does not match the layer: expected (batch, %s)",
      weights_mod.show_shape(got), concat(want, ", ")), "-i")
    diag:check()
  end
  local batch = batched and got[1] or 1
  local out_shape = { batch, table.unpack(ir.output_shape) }
  if not batched then input = input:reshaped({ 1, table.unpack(want) }) end
  local output
  local plan = result.plan
  local packed = plan.simd and plan.simd.packed and plan.simd.packed.size or 0
  output, err = native.jit_run(result.c, result.name, input, out_shape, result.tensors, backend, packed)
  if not output then diag:fail(err, "--backend") end
  local ok
  ok, err = native.write_npy(opts.output, output)
  if not ok then diag:error_in(opts.output, "cannot write output: " .. err, "-o") end
  diag:check()
  return diag
end

-- bench: time one layer
function commands.bench(opts)
  opts.single_layer = "convgen bench times one layer"
  local backend = opts.backend or "tcc"
  if backend ~= "tcc" and backend ~= "cc" and backend ~= "aot" then
    usage_error("bench", "--backend must be tcc, cc or aot")
  end
  if (opts.weights_dir ~= nil) == (opts.random_weights ~= nil) then
    usage_error("bench", "give -w DIR or --random-weights")
  end
  local min_time = tonumber(opts.min_time or "1")
  if not min_time or min_time < 0 or min_time > 3600 then usage_error("bench", "--min-time expects seconds") end
  opts.weights_at_runtime, opts.standalone = true, true
  opts.target = backend == "tcc" and "hybrid" or "native"
  local result = api.generate(opts)
  local ir, diag = result.ir, result.diag
  local tensors = result.tensors
  if not tensors then
    tensors = {}
    for i, w in ipairs(ir.weights) do
      tensors[i] = native.random_tensor(w.shape, i)
    end
  end
  local plan = result.plan
  local packed = plan.simd and plan.simd.packed and plan.simd.packed.size or 0
  local seconds, calls = native.bench(result.c, result.name, plan.in_size, plan.out_size, tensors,
    backend == "tcc" and "tcc" or "cc", min_time, packed)
  if not seconds then diag:fail(calls, "--backend") end
  local flops = 2 * ir.macs
  stdout:write(format("%s %s, batch 1, backend %s (target %s): %d calls\n", ir.class_name,
    "[" .. concat(ir.input_shape, ", ") .. "] -> [" .. concat(ir.output_shape, ", ") .. "]",
    backend, plan.target, calls))
  stdout:write(format("%.2f GFLOP/s\n", flops / seconds * 1e-9))
  stdout:write(format("median %.2f us per call\n", seconds * 1e6))
  return diag
end

------------------------------------------------------------------------------
-- Entry point
------------------------------------------------------------------------------

-- Runs the command line; returns the exit status.
function M.main(argv)
  local command = argv[1]
  if command == nil or command == "-h" or command == "--help" then
    stdout:write(USAGE.main)
    return command and 0 or 2
  end
  if command == "--version" or command == "version" then
    stdout:write("convgen ", emit.VERSION, "\n")
    return 0
  end
  if command == "help" then
    local topic = argv[2] and USAGE[argv[2]] or USAGE.main
    stdout:write(topic)
    return 0
  end
  if not commands[command] then
    stderr:write(format("convgen: error: unknown command '%s' (try convgen --help)\n", command))
    return 2
  end
  local ok, result = xpcall(function()
    local opts = parse_args(command, argv, 2)
    if opts.help then
      stdout:write(USAGE[command])
      return nil
    end
    return commands[command](opts, argv)
  end, function(err)
    -- Bad input and bad usage travel as tables; anything else is a bug: keep where.
    if type(err) == "table" then return err end
    return debug.traceback(tostring(err), 2)
  end)
  if ok then
    if result and #result.warnings > 0 then stderr:write(result:format(), "\n") end
    return 0
  end
  if getmetatable(result) == UsageError then
    stderr:write(format("convgen %s: error: %s (see convgen %s --help)\n", result.command, result.message, result.command))
    return 2
  end
  local d = diag_mod.failure_of(result)
  if d then
    stderr:write(d:format(), "\n")
    return 1
  end
  stderr:write("convgen: internal error (please report): ", tostring(result), "\n")
  return 3
end

return M
