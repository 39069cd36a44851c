-- planner.lua: every performance and code-shape decision for one layer.
-- Input: the IR and the options (target, unroll). Output: a plan the emitter
-- only has to print: memory strides, the interior/border split, the register
-- tiles, which taps are unrolled, and what the code will cost.
local shapes = require("convgen.shapes")
local activations = require("convgen.activations")
local microkernels = require("convgen.microkernel_registry")
local strips = require("convgen.strips")

local M = {}

local format, min = string.format, math.min

-- Code targets: scalar is portable C99; avx2 adds AVX2 + FMA intrinsics
-- (register-tiled strips for dense convolutions); hybrid is a driver for the
-- in-process compiler: the same strips, each a call to one of the runtime's
-- precompiled microkernels (templates/microkernels.lua).
M.TARGETS = { scalar = true, avx2 = true, hybrid = true }

-- AVX2 register tile of a dense convolution: MR pixels x 16 channels.
local AVX2_MR = 6
-- A hybrid separable row's depthwise results per chunk, in floats (16 KiB).
local SEPARABLE_CHUNK = 4096
-- The largest depth multiplier the dwm microkernels take (lane indices are
-- computed in float: exact up to here).
M.MAX_UK_DM = 65536
-- Depthwise: MR pixels x 16 channels; per kernel row, its 3 x 2 weight
-- vectors in registers and each input column loaded once (8 + 6 + 1 ymm).
local AVX2_DEPTHWISE_MR = 4
-- Depthwise layers of at most this many channels (pixels of at most 512
-- bytes) use 8-channel tiles and strips of 8 pixels (6 at stride > 1): fewer
-- loads per multiply-add, 1.2-1.3x faster at 32-128 channels. Wider pixels
-- lose with them (0.5-0.95x at 256-1024 channels, measured): the two
-- 8-channel halves of a cache line are read by different tiles, and with
-- pixels 2-4 KiB apart a tile's lines share one or two L1 sets, so the line
-- is gone before the second half is read.
local AVX2_DEPTHWISE_NARROW = 128
local AVX2_NARROW_MR, AVX2_NARROW_STRIDED_MR = 8, 6
-- Depthwise planes (simd.plane): the bound on the stack buffer in floats
-- (16 KiB: it stays in L1) and on output pixels x taps, which sets the
-- code's length (a 7x7 output with a 3x3 kernel: 722 FMAs per tile). The
-- channels per block and output pixels per run of accumulators (2 vectors
-- each: 14 of the 16 ymm) are the dwplane microkernels' (registry).
local PLANE_BUFFER, PLANE_TAPS = 4096, 576
-- A layer of one output row splits it for a thread pool (p.segments): into
-- at most this many segments per item, of at least this many columns.
M.MAX_SEGMENTS, M.MIN_SEGMENT = 16, 16

-- Channel tiles for 8-lane vectors: 16-channel tiles, then one of 8, then
-- a masked one for the rest.
-- eights: 8-channel tiles only (then a masked one).
local function channel_blocks(n, eights)
  local blocks = {}
  local full = n // 16
  if eights then full = 0 end
  if full > 0 then blocks[#blocks + 1] = { first = 0, count = full, vectors = 2 } end
  local rest = n % 16
  if eights and n >= 8 then
    blocks[#blocks + 1] = { first = 0, count = n // 8, vectors = 1 }
    rest = n % 8
  elseif rest >= 8 then
    blocks[#blocks + 1] = { first = full * 16, count = 1, vectors = 1 }
    rest = rest - 8
  end
  if rest > 0 then
    local lanes = {}
    for i = 1, 8 do lanes[i] = i <= rest and "-1" or "0" end
    blocks[#blocks + 1] = { first = n - rest, count = 1, vectors = 1, masked = true, width = rest,
                            mask = table.concat(lanes, ", ") }
  end
  return blocks
end

-- The kernel rows of an interior depthwise strip of w pixels: per row its
-- taps, and the input columns it reads (ascending), each with its offset
-- from tap (0, 0) of the first pixel and the (pixel, tap) pairs reading it.
-- Every accumulator still adds its taps in kernel order.
local function depthwise_rows(ir, taps, w, pixel)
  local rows = {}
  for _, t in ipairs(taps) do
    local row = rows[#rows]
    if not row or row.kh ~= t.kh then
      row = { kh = t.kh, taps = {}, columns = {}, offset = t.offset - t.kw * ir.d_w * pixel }
      rows[#rows + 1] = row
    end
    row.taps[#row.taps + 1] = t
  end
  for _, row in ipairs(rows) do
    local by_column = {}
    for p = 0, w - 1 do
      for _, t in ipairs(row.taps) do
        local column = p * ir.s_w + t.kw * ir.d_w
        local col = by_column[column]
        if not col then
          col = { column = column, offset = row.offset + column * pixel, uses = {} }
          by_column[column] = col
          row.columns[#row.columns + 1] = col
        end
        col.uses[#col.uses + 1] = { p = p, kw = t.kw }
      end
    end
    table.sort(row.columns, function(a, b) return a.column < b.column end)
  end
  return rows
end

-- Accumulators per register tile; scalar code keeps them in locals.
local TILE = 8
-- Unrolled multiply-adds allowed in one pixel function before taps become a loop.
local UNROLL_BUDGET = 2048
-- --unroll full: the hard cap on multiply-adds written out one by one.
M.FULL_UNROLL_MAX_MACS = 65536
-- A separable pixel's depthwise results live on the stack: at most 64 KiB.
M.MAX_MID = 16384

-- Splits n channels into tiles of at most `width`: full tiles, then one remainder.
local function tiles(n, width)
  local t = {}
  local full = n // width
  if full > 0 then t[#t + 1] = { first = 0, count = full, width = width } end
  if n % width > 0 then t[#t + 1] = { first = full * width, count = 1, width = n % width } end
  return t
end

-- Element strides of the (h, w, c) axes of a tensor in the layer's data format.
local function strides(channels_first, h, w, c)
  if channels_first then return { h = w, w = 1, c = h * w } end
  return { h = w * c, w = c, c = 1 }
end

-- Output positions along one axis whose taps are clipped by padding: each
-- gets its own call with constant tap bounds, so their number is capped.
M.MAX_BORDER = 1024
-- Floats of a packed kernel: generated code indexes it with int.
M.MAX_PACKED = 2147483647
local function borders(out, s, d, k, pad, n, lo, hi)
  if lo == hi then lo, hi = out, out end -- no interior: every position is a border
  if lo + (out - hi) > M.MAX_BORDER then return nil, lo + (out - hi) end
  local list = {}
  local function add(o)
    local first, last = shapes.tap_range(o, s, d, k, pad, n)
    list[#list + 1] = { o = o, first = first, last = last, before = o < lo }
  end
  for o = 0, lo - 1 do add(o) end
  for o = hi, out - 1 do add(o) end
  return list
end

-- A layer of one output row (every 1D layer) gives a thread pool nothing to
-- split by rows: its _rows entry point takes segments of that row instead,
-- as {width, count, base}. Segment s covers output columns [base + s *
-- width, base + (s + 1) * width), the first from column 0 (the left border
-- columns), the last to the row's end (the right ones, and the strips
-- narrower than the widest). Segments start at multiples of the width the
-- row's strips step by, so each pixel is computed by the same strip code
-- however the row is split. nil: the layer splits by rows.
local function segments(ir, p)
  local simd = p.simd
  local flat = simd and simd.flat
  if ir.out_h ~= 1 or p.unroll == "full" or p.axis_pass then return nil end
  if not flat and not (p.use_row_interior and #p.border_rows == 0 and p.h_lo == 0 and p.h_hi == 1) then
    return nil
  end
  -- unit: what the row's strips step by; extent: the columns from base
  -- where a segment may end (the full strips)
  local base, unit, extent = p.w_lo, 1, p.w_hi - p.w_lo
  if flat then
    base, unit, extent = 0, simd.mr, ir.out_w
  elseif simd and simd.row_microkernel and simd.chunk then
    unit = simd.sep and simd.sep_strip or simd.chunk
  elseif simd and (simd.row_microkernel or p.use_depthwise_pixel or simd.mid_microkernel or simd.mid_strip) then
    unit = simd.mr
    if not simd.row_microkernel then extent = simd.full_strips * simd.mr end
  elseif simd then
    local first = simd.runs[1]
    unit, extent = first.width, first.width == simd.mr and first.count * first.width or 0
  end
  local width = math.max(-(-M.MIN_SEGMENT // unit), -(-extent // (M.MAX_SEGMENTS * unit))) * unit
  local count = -(-extent // width)
  if count < 2 then return nil end
  return { width = width, count = count, base = base }
end

-- What the layer's _rows entry point counts per batch item: output rows,
-- segments of the one row (p.segments), or 1 for a fully unrolled layer.
function M.rows_per_item(ir, p)
  if p.unroll == "full" then return 1 end
  return p.segments and p.segments.count or ir.out_h
end

-- Plans a layer. options: target ("scalar"), unroll ("default" or "full").
-- Returns the plan, or nil and a message naming the problem.
function M.plan(ir, options)
  local target = options.target or "scalar"
  if not M.TARGETS[target] then
    return nil, format("unknown target '%s'", target), "--target"
  end
  local p = { target = target, unroll = options.unroll or "default" }
  p.act = ir.activation_entry or activations.get(ir.activation, ir.keras_version)
  p.in_stride = strides(ir.channels_first, ir.in_h, ir.in_w, ir.in_c)
  p.out_stride = strides(ir.channels_first, ir.out_h, ir.out_w, ir.out_c)
  p.in_size = ir.in_h * ir.in_w * ir.in_c
  p.out_size = ir.out_h * ir.out_w * ir.out_c
  if ir.activation ~= "linear" and p.act.axis_pass then
    -- Keras applies softmax to the last axis of the output tensor.
    local last = ir.channels_first and ir.out_w or ir.out_c
    -- per output row: channels_last, the row's pixels; channels_first, one
    -- vector along the width per channel
    p.axis_pass = {
      kind = p.act.axis_pass, length = last, count = p.out_size // last,
      row_count = ir.channels_first and ir.out_c or ir.out_w,
      row_stride = ir.channels_first and p.out_stride.c or p.out_stride.w,
    }
  end

  if p.unroll == "full" then
    if ir.macs > M.FULL_UNROLL_MAX_MACS then
      return nil, format("--unroll full is limited to %d multiply-adds per batch item; this layer has %d",
        M.FULL_UNROLL_MAX_MACS, ir.macs), "--unroll"
    end
    return p
  elseif p.unroll ~= "default" then
    return nil, format("unknown unroll mode '%s'; expected default or full", p.unroll), "--unroll"
  end

  -- Interior: output rows and columns that read no padding.
  p.h_lo, p.h_hi = shapes.interior(ir.out_h, ir.s_h, ir.d_h, ir.k_h, ir.pad_top, ir.in_h)
  p.w_lo, p.w_hi = shapes.interior(ir.out_w, ir.s_w, ir.d_w, ir.k_w, ir.pad_left, ir.in_w)
  local rows_n, cols_n
  p.border_rows, rows_n = borders(ir.out_h, ir.s_h, ir.d_h, ir.k_h, ir.pad_top, ir.in_h, p.h_lo, p.h_hi)
  p.border_cols, cols_n = borders(ir.out_w, ir.s_w, ir.d_w, ir.k_w, ir.pad_left, ir.in_w, p.w_lo, p.w_hi)
  if not p.border_rows or not p.border_cols then
    return nil, format("the kernel's extent leaves %d output positions in the padding; at most %d are supported",
      rows_n or cols_n, M.MAX_BORDER), "config.kernel_size"
  end

  -- Register tiles, and whether a pixel's taps fit the unrolling budget.
  local ntaps = ir.k_h * ir.k_w
  if ir.op == "conv" then
    p.ci_per_group = ir.in_c // ir.groups
    p.co_per_group = ir.out_c // ir.groups
    p.co_tiles = tiles(p.co_per_group, min(TILE, p.co_per_group))
    p.unroll_taps = ntaps * TILE <= UNROLL_BUDGET
  else
    -- Accumulators: a tile of channels times a tile of depth multipliers.
    local dm = ir.depth_multiplier
    local m_width = min(dm, TILE)
    local c_width = min(math.max(1, TILE // m_width), ir.in_c)
    p.c_tiles = tiles(ir.in_c, c_width)
    p.m_tiles = tiles(dm, m_width)
    p.unroll_taps = ntaps * c_width * m_width <= UNROLL_BUDGET
    if ir.op == "separable" then
      p.mid_size = ir.in_c * dm
      if p.mid_size > M.MAX_MID then
        return nil, format("a separable layer with in_channels * depth_multiplier = %d keeps more than %d floats " ..
          "per pixel on the stack; at most %d are supported", p.mid_size, M.MAX_MID, M.MAX_MID),
          "config.depth_multiplier"
      end
      p.co_tiles = tiles(ir.filters, min(TILE, ir.filters))
    end
  end

  -- Taps of the interior, with their offsets from tap (0, 0), when unrolled.
  p.taps = {}
  for kh = 0, p.unroll_taps and ir.k_h - 1 or -1 do
    for kw = 0, ir.k_w - 1 do
      p.taps[#p.taps + 1] = {
        kh = kh, kw = kw, index = kh * ir.k_w + kw, name = kh .. "x" .. kw,
        offset = kh * ir.d_h * p.in_stride.h + kw * ir.d_w * p.in_stride.w,
      }
    end
  end

  -- AVX2: strips of MR interior pixels along the width, each all output
  -- channels in 16-channel register tiles. A dense convolution reads its
  -- input and kernel; a separable one first computes the strip's depthwise
  -- results into a small tile on the stack (pixel stride in_c * dm) and runs
  -- the same strip over it with the pointwise kernel, so no intermediate
  -- tensor is written.
  local dense = ir.op == "conv" and ir.groups == 1
  local separable = ir.op == "separable"
  -- Depthwise with one multiplier: vectors over channels, MR x 16 tiles.
  -- (Below 8 channels the masked tile loses to the scalar code, measured.)
  -- (A hybrid driver's alternative is scalar code built by libtcc: slower
  -- still, so it takes any channel count and, through the dwm microkernel,
  -- any depth multiplier.)
  local hybrid = target == "hybrid"
  local dm = ir.depth_multiplier
  -- (The avx2 target's strips spread a vector's input over its lanes for a
  -- multiplier dividing 8: dw 3x3 56x56x32 dm2 in make bench, 20 -> 66 GFLOP/s.)
  local depthwise = ir.op == "depthwise"
    and (dm == 1 and ir.in_c >= 8 or hybrid and dm <= M.MAX_UK_DM
      or not hybrid and (dm == 2 or dm == 4 or dm == 8) and ir.out_c >= 8)
  if (target == "avx2" or hybrid) and (dense or separable or depthwise) and not ir.channels_first
     and p.unroll_taps and p.h_hi > p.h_lo and p.w_hi > p.w_lo then
    -- A 1x1 stride-1 dense layer reads only output pixel p's own input
    -- pixel, so an item's rows laid end to end are one long row: strips run
    -- across row ends and only the item's last strip is narrower (a 7-pixel
    -- row would otherwise be a 6-pixel strip and an inefficient 1-pixel one).
    -- (An axis pass works row by row; a hybrid driver needs the row
    -- microkernel to apply the activation.)
    local flat = dense and ir.k_h == 1 and ir.k_w == 1 and ir.s_h == 1 and ir.s_w == 1 and not p.axis_pass
      and (not hybrid or (not ir.activation_entry and microkernels.activations[ir.activation] ~= nil))
    local width = flat and ir.out_h * ir.out_w or p.w_hi - p.w_lo
    -- Narrow depthwise layers: 8-channel tiles, wider strips (see AVX2_DEPTHWISE_NARROW).
    local narrow = depthwise and not hybrid and ir.in_c <= AVX2_DEPTHWISE_NARROW
    local blocks = channel_blocks(ir.out_c, narrow)
    local widest = depthwise and AVX2_DEPTHWISE_MR or AVX2_MR
    if narrow then widest = ir.s_w == 1 and AVX2_NARROW_MR or AVX2_NARROW_STRIDED_MR end
    if hybrid then
      widest = microkernels.widest(depthwise and (dm > 1 and "dwm" or ir.in_c <= AVX2_DEPTHWISE_NARROW and "dwn"
        or "dw") or "conv")
    end
    local mr = min(widest, width)
    local simd = { blocks = blocks, full16 = (ir.out_c // 16) * 16, out_pixel_stride = p.out_stride.w,
                   kind = dense and "dense" or separable and "separable" or "depthwise" }
    if hybrid then
      -- The activation the microkernels apply (softmax: the axis pass does),
      -- or nil: the driver applies it to the stored strip.
      simd.uk_act = not ir.activation_entry and microkernels.activations[ir.activation]
        or (p.act.axis_pass and 0) or nil
      -- The depthwise microkernel kind: dw for one multiplier, dwm for more.
      simd.dw_kind = (depthwise or separable) and (dm == 1 and "dw" or "dwm") or nil
      -- Narrow depthwise layers: 8-channel tiles (see AVX2_DEPTHWISE_NARROW).
      -- A separable step always: dw reads a packed kernel, and the packed
      -- array of a separable layer is its pointwise kernel.
      if dm == 1 and (separable or depthwise and ir.in_c <= AVX2_DEPTHWISE_NARROW) then simd.dw_kind = "dwn" end
      -- A separable strip's depthwise step through the depthwise microkernel;
      -- otherwise pixel by pixel in the driver.
      simd.mid_microkernel = separable and dm <= M.MAX_UK_DM
      -- a depthwise microkernel made for this kernel shape (interior strips),
      -- or for this shape, channel count and stride (channels_last: a pixel's
      -- channels are contiguous, output pixels in_c * depth_multiplier apart)
      simd.fixed_taps = (depthwise or simd.mid_microkernel)
        and microkernels.fixed_taps(simd.dw_kind, ir.k_h, ir.k_w, dm == 1 and ir.in_c, ir.s_w, ir.d_w) or false
      -- The fixed taps of the layer's own microkernel (interior strips):
      -- the depthwise ones above, or a dense microkernel made for this
      -- kernel shape, input channel count and stride (a kernel row's taps
      -- are one run of k_w * in_c floats; a fixed shape alone gains nothing).
      local conv_taps = dense and microkernels.fixed_taps("conv", ir.k_h, ir.k_w, ir.in_c, ir.s_w, ir.d_w)
      simd.uk_taps = depthwise and simd.fixed_taps or (conv_taps and conv_taps.c and conv_taps) or false
      -- A row's interior strips in one call of a row microkernel, when the
      -- microkernel applies the activation. A separable row goes in chunks:
      -- one depthwise row call into a stack tile of SEPARABLE_CHUNK floats
      -- (it stays in L1), then one pointwise row call over it.
      simd.row_microkernel = simd.uk_act ~= nil and (not separable or simd.mid_microkernel)
      if simd.row_microkernel and separable then
        simd.chunk = math.max(1, min(p.w_hi - p.w_lo, SEPARABLE_CHUNK // p.mid_size))
        -- A depthwise fixed geometry has a fused separable row: one call per
        -- interior row, each strip's depthwise step among its pointwise
        -- multiply-adds (1.11x -> 1.0x the avx2 target's time on
        -- SeparableConv1D k3 dilation 8, 32 channels). Border columns keep
        -- the chunks.
        simd.sep, simd.sep_strip = microkernels.sep(simd.fixed_taps)
        simd.sep = simd.sep or false
      end
    end
    if depthwise then
      simd.taps, simd.pixel_stride, simd.kernel = p.taps, ir.s_w * p.in_stride.w, "kernel"
    elseif dense then
      simd.taps, simd.ci, simd.ci_stride = p.taps, ir.in_c, p.in_stride.c
      simd.pixel_stride, simd.kernel = ir.s_w * p.in_stride.w, "kernel"
    else
      mr = min(mr, math.max(1, M.MAX_MID // p.mid_size)) -- the tile stays within the stack budget
      simd.taps = { { kh = 0, kw = 0, index = 0, offset = 0 } }
      simd.ci, simd.ci_stride, simd.pixel_stride, simd.kernel = p.mid_size, 1, p.mid_size, "pointwise_kernel"
    end
    simd.flat = flat
    simd.mr, simd.full_strips, simd.rest = mr, width // mr, width % mr
    if depthwise and not hybrid then
      -- An interior strip of w pixels, kernel row by kernel row: the input
      -- columns it reads, each with the (pixel, tap) pairs that read it.
      simd.tap_rows = {}
      for _, w in ipairs({ mr, simd.rest }) do
        if w > 0 and not simd.tap_rows[w] then simd.tap_rows[w] = depthwise_rows(ir, p.taps, w, p.in_stride.w) end
      end
    elseif separable and not hybrid and dm == 1 then
      -- A separable strip's depthwise step through the same AVX2 strips,
      -- 8-channel tiles (a strip of 6 pixels keeps 6 accumulators and a
      -- kernel row's 3 weight vectors in registers), the kernel read in
      -- Keras layout. Border pixels keep the scalar code.
      simd.mid_strip = { blocks = channel_blocks(ir.in_c, true), tap_rows = {} }
      for _, w in ipairs({ mr, simd.rest }) do
        if w > 0 and not simd.mid_strip.tap_rows[w] then
          simd.mid_strip.tap_rows[w] = depthwise_rows(ir, p.taps, w, p.in_stride.w)
        end
      end
    end
    simd.rest_first = p.w_lo + simd.full_strips * mr -- column of the narrower last strip
    -- The strips an interior or border row calls, as runs {width, count}:
    -- full strips, then narrower ones. A dense AVX2 row ends in strips of 5
    -- rather than in one of 1 to 4 pixels (strips.lua). A flat layer's pixel
    -- ranges come at run time: its driver splits them the same way there.
    simd.end_narrower = dense and not hybrid and mr == AVX2_MR
    simd.runs = strips.split(width, mr, simd.end_narrower)
    -- Dense and depthwise layers do their border pixels with the same tiles,
    -- taps clipped at run time (cstrip, dwcstrip); so does an AVX2 separable
    -- layer with depth_multiplier 1 (simd.mid_strip): the checked depthwise
    -- strip, then the pointwise strip. Other separable layers keep per-pixel
    -- border code.
    simd.checked = dense or depthwise or (separable and not hybrid and dm == 1)
    -- Border columns, over the interior rows, go in strips down each column
    -- (vcstrip, vdwcstrip; a hybrid separable layer: chunks): as 1-pixel
    -- strips, every pixel would stream the whole kernel for 2 FMAs per weight
    -- vector (depthwise: 3 loads per 2 FMAs). (An axis pass needs each row
    -- complete in turn; a hybrid driver calls the row microkernel, which must
    -- apply the activation.)
    local interior_rows = p.h_hi - p.h_lo
    -- (A hybrid separable layer's columns go in chunks, as its rows do.)
    simd.vertical = (dense or depthwise or (hybrid and simd.chunk) or simd.mid_strip) and #p.border_cols > 0
      and interior_rows >= 2 and not p.axis_pass and (not hybrid or simd.row_microkernel) or false
    -- Wide depthwise layers (16-channel tiles; pixels of 512 bytes or more)
    -- go strip column by strip column, down the interior rows: a strip's
    -- channel loop reads 3 x 6 pixels (36 KiB at 512 channels), more than L1
    -- holds, so in row order the rows it shares with the strip below are
    -- gone by then. Down a column, every other strip runs its channel tiles
    -- in descending order and starts on the lines the last one read last.
    -- dw 3x3 14x14x512: 43.4 -> 40.8 us (medians, alternating).
    simd.column_major = simd.vertical and depthwise and not hybrid and not narrow or false
    -- Small planes of 1024 channels or a multiple: input pixels lie a
    -- multiple of 4 KiB apart, so channel c of every pixel maps to one L1
    -- set (8 lines); a strip's 3 x 6 input lines per tile evict each other.
    -- Such layers go a block of channels at a time: the block of the input
    -- rows read is copied into a stack buffer, tile after tile ([tile][pixel]
    -- [16]: lines in consecutive sets), then each 16-channel tile computes
    -- every output row from it, a segment of pixels at a time, border taps
    -- left out as the code is written (templates/plane_depthwise.c.in).
    -- dw 3x3 7x7x1024: 30.0 -> 16.2 us; at 960 channels (no aliasing) the
    -- strips already reach 18 us, and at 512 the two are even; at 14x14 a
    -- plane is 4x the buffer and 3x slower (measured). A hybrid driver calls
    -- the plane microkernel made for the layer's geometry, if any, when it
    -- applies the activation.
    local tiling = microkernels.plane_tiling()
    local plane_px = ir.in_h * ir.in_w
    local plane_layer = depthwise and dm == 1 and ir.in_c % 1024 == 0 and not p.axis_pass and not flat
    local plane_uk = plane_layer and hybrid and simd.uk_act and microkernels.plane(ir)
    simd.plane = plane_layer
      and (plane_uk or not hybrid and plane_px * tiling.block <= PLANE_BUFFER
        and ir.out_h * ir.out_w * ntaps <= PLANE_TAPS)
      and { block = tiling.block, segment = tiling.segment, microkernel = plane_uk or nil } or false
    -- A hybrid narrow layer with 'same' padding at stride 1 whose shape and
    -- channel count have a dwsame microkernel: the whole plane in one call,
    -- border pixels included (dw 3x3 16x16x16 under tcc: 1.28 -> 0.83-0.90 us).
    local same_uk = depthwise and hybrid and dm == 1 and simd.dw_kind == "dwn" and simd.uk_act
      and not p.axis_pass and not flat and microkernels.same(ir)
    if same_uk then simd.plane = { microkernel = same_uk } end
    -- The avx2 target writes the same code into the layer for a narrow
    -- layer of 8-channel tiles (its own shape and channel count folded in,
    -- the kernel packed): in make bench dw 3x3 56x56x128 went from 54.9 to
    -- 62.0 GFLOP/s; 112x112x32 (72.8 -> 73.4) and 16x16x16 (73.6 -> 72.9)
    -- held.
    if not hybrid and narrow and dm == 1 and ir.in_c % 8 == 0 and not p.axis_pass
      and microkernels.same_shape(ir) then
      simd.plane = { same = true, strip = microkernels.same_strip() }
    end
    -- A Conv2D 3x3 at stride 1, 'same' or 'valid', of at most 256 channels each way:
    -- the whole plane by Winograd F(2x2, 3x3). A hybrid driver calls the
    -- wino microkernel once per row range (if it applies the activation);
    -- the avx2 target writes the same code into the layer, its shape,
    -- channels, bias and activation folded in, the kernel transformed when
    -- it is baked (or by the layer's pack function). make bench: 1.8-2.0x
    -- the direct code at 56x56x64, 28x28x128 and 14x14x256.
    local wino_uk, winograd = microkernels.wino(ir)
    if not (dense and not p.axis_pass and not flat) then wino_uk = nil end
    if wino_uk and hybrid and simd.uk_act then simd.plane = { microkernel = wino_uk, wino = true } end
    if wino_uk and not hybrid then simd.plane = { wino = true, tile = winograd.tile } end
    if simd.plane then simd.vertical, simd.column_major = false, false end
    if simd.vertical then
      simd.vmr = min(dense and AVX2_MR or mr, interior_rows)
      simd.vstrips = {}
      for w = simd.vmr, 1, -1 do simd.vstrips[#simd.vstrips + 1] = w end
    end
    simd.cstrips = {} -- the widths border rows and columns call
    if simd.checked and not simd.plane then
      local seen = {}
      local function use(w)
        if w > 0 and not seen[w] then
          seen[w] = true
          simd.cstrips[#simd.cstrips + 1] = w
        end
      end
      if #p.border_rows > 0 then
        for _, r in ipairs(simd.runs) do use(r.width) end
      end
      if #p.border_cols > 0 and (#p.border_rows > 0 or not simd.vertical) then use(1) end
    end
    -- Separable border pixels: scalar depthwise into mid, then the pointwise
    -- step through a 1-pixel strip.
    simd.border_strip = separable and (#p.border_rows > 0 or #p.border_cols > 0)
    -- The interior strip functions, by width: the strip and the narrower last
    -- one; every narrower width for a flat layer (a range of pixels may end
    -- anywhere); none where a row microkernel does them; the 1-pixel strip
    -- for separable border pixels.
    local widths = {}
    for _, r in ipairs(simd.runs) do widths[#widths + 1] = r.width end
    if flat then
      widths = {}
      for w = mr, 1, -1 do widths[#widths + 1] = w end
    end
    if simd.row_microkernel or simd.plane then widths = {} end
    if simd.border_strip and widths[#widths] ~= 1 then widths[#widths + 1] = 1 end -- widths descend
    simd.widths = widths
    -- (A hybrid driver's dwn and dwm microkernels read the kernel as it is.)
    if not (depthwise and hybrid and simd.dw_kind ~= "dw") then
      -- Weights packed tile by tile, [tile][tap * ci][16 or 8], zero-padded:
      -- Keras's layout would stride the rows by out_c floats, a new page per
      -- input channel once out_c reaches 1024. A depthwise kernel (one input
      -- channel per output channel) packs as [tile][tap][16 or 8]: a tile's
      -- weights are one aligned stream (unaligned ones cost up to 1.5x, measured).
      local rows, offset = #simd.taps * (depthwise and 1 or simd.ci), 0
      for _, b in ipairs(blocks) do
        b.packed_width = b.vectors == 2 and 16 or 8
        b.lanes = b.masked and b.width or b.packed_width
        b.offset = offset
        offset = offset + b.count * rows * b.packed_width
      end
      simd.packed = { rows = rows, columns = ir.out_c, size = offset, source = simd.kernel,
                      name = simd.kernel .. "_packed" }
      if simd.plane and simd.plane.wino then -- the kernel transformed: 16 x ci x co
        offset = 16 * ir.in_c * ir.out_c
        simd.packed = { wino = true, ci = ir.in_c, columns = ir.out_c, size = offset, source = simd.kernel,
                        name = simd.kernel .. "_packed" }
      end
      -- Zero padding to whole tiles can grow the kernel past what int indexes.
      if offset > M.MAX_PACKED then
        return nil, format("the %s target pads the kernel to %d floats (whole channel tiles); "
          .. "at most %d are supported: use --target scalar", p.target, offset, M.MAX_PACKED), "--target"
      end
    end
    p.simd = simd
  end

  -- Which helper functions exist (an unused static function is a warning).
  local rows_interior = p.h_hi > p.h_lo
  local cols_interior = p.w_hi > p.w_lo
  local flat = p.simd and p.simd.flat
  local plane = p.simd and p.simd.plane
  p.use_row_interior = rows_interior and not flat and not (p.simd and p.simd.column_major) and not plane
  -- whether an interior row does its own border columns
  p.row_columns = #p.border_cols > 0 and not (p.simd and p.simd.vertical) and not plane
  p.use_row_border = #p.border_rows > 0 and not flat and not plane
  p.use_pixel_interior = rows_interior and cols_interior and p.unroll_taps and not p.simd
  -- a separable strip computes each pixel's depthwise results on its own
  p.use_depthwise_pixel = p.simd and separable and not p.simd.mid_microkernel and not p.simd.mid_strip or false
  p.use_pixel_border = (#p.border_rows > 0 or #p.border_cols > 0 and not (p.simd and p.simd.vertical)
    or not p.unroll_taps) and not (p.simd and p.simd.checked)
  p.segments = segments(ir, p)
  -- Whether the code reads the plain kernel too, or only its packed copy
  -- (border pixels done by scalar code read it; a separable strip's do not).
  if p.simd and p.simd.packed then
    p.simd.packed.plain_read = p.use_pixel_border and not p.simd.border_strip or false
  end
  return p
end

return M
