-- microkernels.lua: the registry of convgen's microkernels, the one list
-- both the runtime's precompiled set and its tests are generated from
-- (gen/convgen/microkernels.lua renders them; make builds them).
--
-- A microkernel computes a strip of `mr` output pixels along the width, every
-- output channel, in channel tiles of 16, then one of 8, then one partial
-- tile; shapes, strides and the taps to visit come at run time in a geometry
-- struct (templates/microkernel_abi.h.in). Code compiled by libtcc drives
-- the loops and calls them; the runtime picks the ISA as it compiles one.
--
-- A variant is named by its parameters: convgen_uk_<kind>_<isa>_<mr>x<tile>
-- (tile: the channel tile, 16, or 8 for dwn),
-- with _k<kh>x<kw> for a fixed kernel shape. Each kind, kernel shape and ISA
-- also has a row variant, convgen_uk_<kind>_<isa>_row[_k<kh>x<kw>]: any
-- number of pixels, as strips of the widest variant and one narrower
-- (templates/microkernel_row.c.in). The driver calls the
-- ISA-neutral name (the same without <isa>), which the runtime binds to the
-- best ISA the CPU has.
local M = {}

-- Instruction sets, as the operations the templates use. `lanes` floats per
-- vector; `masked`: the partial tile uses masked loads and stores (otherwise
-- the template loops over its lanes one at a time, as a NEON variant would).
-- Fastest first: the runtime takes the first one the CPU runs.
-- Every operation returns C text.
M.isas = {
  {
    name = "avx2", title = "AVX2 + FMA", lanes = 8, vec = "__m256", masked = true,
    -- The variants exist where this macro is defined (x86-64, GCC or clang);
    -- C for "this CPU runs them", after cpu_init.
    guard = "CONVGEN_UK_X86",
    cpu_init = "        __builtin_cpu_init();\n",
    cpu = '__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")',
    -- Functions, not the file, get the ISA: the runtime runs on any x86-64.
    attribute = '__attribute__((target("avx2,fma")))',
    includes = { "immintrin.h" },
    zero = function() return "_mm256_setzero_ps()" end,
    splat = function(x) return "_mm256_set1_ps(" .. x .. ")" end,
    load = function(p) return "_mm256_loadu_ps(" .. p .. ")" end,
    broadcast = function(p) return "_mm256_broadcast_ss(" .. p .. ")" end,
    fma = function(a, b, c) return "_mm256_fmadd_ps(" .. a .. ", " .. b .. ", " .. c .. ")" end,
    add = function(a, b) return "_mm256_add_ps(" .. a .. ", " .. b .. ")" end,
    sub = function(a, b) return "_mm256_sub_ps(" .. a .. ", " .. b .. ")" end,
    max = function(a, b) return "_mm256_max_ps(" .. a .. ", " .. b .. ")" end,
    min = function(a, b) return "_mm256_min_ps(" .. a .. ", " .. b .. ")" end,
    store = function(p, v) return "_mm256_storeu_ps(" .. p .. ", " .. v .. ")" end,
    mask_type = "__m256i",
    -- lanes [0, n) of a vector: a window on a table of -1s then 0s
    mask = function(n) return "_mm256_loadu_si256((const __m256i *)(convgen_uk__lanes + 8 - " .. n .. "))" end,
    maskload = function(p, m) return "_mm256_maskload_ps(" .. p .. ", " .. m .. ")" end,
    maskstore = function(p, m, v) return "_mm256_maskstore_ps(" .. p .. ", " .. m .. ", " .. v .. ")" end,
    -- Spreading loaded values over lanes (the dwm kind): lane l of
    -- permute(v, ix) is lane ix[l] of v; lane_index(r, inv) is the vector of
    -- floor((r + l) / dm) for lanes l, inv being 1 / dm in every lane.
    -- A pointer the compiler must step as written: without it GCC turns a
    -- pointer walking a run-time stride back into one precomputed address
    -- per step, more than the registers hold (spilled, then reloaded).
    opaque = function(p) return '__asm__("" : "+r"(' .. p .. "));" end,
    index_type = "__m256i",
    permute = function(v, ix) return "_mm256_permutevar8x32_ps(" .. v .. ", " .. ix .. ")" end,
    -- the 4 floats at p in both halves, lane l taking float ix[l] (0-3) of its half
    index_const = function(values) return "_mm256_setr_epi32(" .. table.concat(values, ", ") .. ")" end,
    spread = function(p, ix) return "_mm256_permutevar_ps(_mm256_broadcast_ps((const __m128 *)(" .. p .. ")), " .. ix .. ")" end,
    lane_index = function(r, inv)
      return "_mm256_cvttps_epi32(_mm256_mul_ps(_mm256_add_ps(_mm256_set1_ps(" .. r .. "), "
        .. "_mm256_setr_ps(0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f)), " .. inv .. "))"
    end,
  },
  {
    name = "scalar", title = "portable C", lanes = 1, vec = "float", masked = false, cpu = "1",
    -- No fixed-geometry variants: the table binds their names to the variant
    -- for the same kernel shape, which reads the strides from the geometry.
    geometries = false,
    opaque = function() return "" end,
    attribute = "", includes = {},
    zero = function() return "0.0f" end,
    splat = function(x) return x end,
    load = function(p) return "*(" .. p .. ")" end,
    broadcast = function(p) return "*(" .. p .. ")" end,
    fma = function(a, b, c) return c .. " + " .. a .. " * " .. b end,
    add = function(a, b) return "(" .. a .. " + " .. b .. ")" end,
    sub = function(a, b) return "(" .. a .. " - " .. b .. ")" end,
    -- NaN becomes 0 under relu, as in the AVX2 variant and the generated code
    max = function(a, b) return "(" .. a .. " > " .. b .. " ? " .. a .. " : " .. b .. ")" end,
    min = function(a, b) return "(" .. a .. " < " .. b .. " ? " .. a .. " : " .. b .. ")" end,
    store = function(p, v) return "*(" .. p .. ") = " .. v end,
  },
}

-- What each kind computes, its template, and the strip widths precompiled.
-- An ISA without a permute (the scalar one) reads a dwm input lane by lane.
M.kinds = {
  {
    name = "conv", template = "templates/microkernel_conv.c.in", geometry = "convgen_uk_conv",
    -- 6 pixels x 16 channels: 12 accumulators, 2 weight vectors, 1 input.
    mr = { 1, 2, 3, 4, 5, 6 },
    -- A row variant ends in strips one narrower rather than in a strip of
    -- 1 to 4 pixels, whose few accumulators cannot cover the FMA latency.
    end_narrower = true,
    -- First layers of image models read 3 channels: their tap loops run 3
    -- steps, and the loop overhead costs a tenth of the time. Variants for
    -- the shapes and strides of the common ones (3x3 at stride 1 and 2, 7x7
    -- at 2) with a kernel row's steps written out at constant offsets.
    -- ISAs without fixed geometries get the shapes alone (stand_in_taps:
    -- every tap, strides from the geometry) to bind those names to.
    stand_in_taps = { { 3, 3 }, { 7, 7 } },
    fixed_geometries = {
      { taps = { 3, 3 }, channels = { 3 }, strides = { 1, 2 } },
      { taps = { 7, 7 }, channels = { 3 }, strides = { 2 } },
    },
    what = "dense convolution over a packed kernel (Conv1D, Conv2D, pointwise)",
  },
  {
    name = "dw", template = "templates/microkernel_depthwise.c.in", geometry = "convgen_uk_dw",
    mr = { 1, 2, 3, 4 },
    -- Kernel shapes with their own variants: every tap read, the tap loops
    -- written out (no tap range arguments). A few taps per channel tile
    -- leave the loop overhead too large a share otherwise.
    fixed_taps = { { 3, 3 }, { 1, 3 }, { 5, 5 } },
    what = "depthwise convolution, depth_multiplier 1, kernel in Keras layout",
  },
  {
    -- Narrow layers (up to 128 channels, measured): 8-channel tiles and
    -- strips of up to 8 pixels; the 3x3 and 1x3 variants load each input
    -- column once per kernel row at stride 1.
    name = "dwn", template = "templates/microkernel_depthwise.c.in", geometry = "convgen_uk_dw",
    mr = { 1, 2, 3, 4, 5, 6, 7, 8 }, tile = 8,
    fixed_taps = { { 3, 3 }, { 1, 3 } },
    -- Variants for a fixed shape and channel count at a fixed stride along
    -- the width, named _k<kh>x<kw>_c<channels>s<stride>: their pixel stride
    -- is a constant, so every input load is an offset from one pointer per
    -- tap (per kernel row at stride 1 without dilation); at stride 1 the
    -- taps may be dilated (dilated: the distance between taps comes at run
    -- time; Keras allows no dilation with a stride). With strides known
    -- only at run time the compiler steps a pointer per load: twice the
    -- instructions, and 1.25x the time at stride 2 (measured on 64
    -- channels); a 1x3 step dilated by 8 over 32 channels ran at 29 GFLOP/s.
    fixed_geometries = {
      { taps = { 3, 3 }, channels = { 16, 32, 64, 128 }, strides = { 1, 2 }, dilated = true },
      { taps = { 1, 3 }, channels = { 16, 32, 64, 128 }, strides = { 1 }, dilated = true },
    },
    what = "depthwise convolution, depth_multiplier 1, 8-channel tiles",
  },
  {
    -- A separable layer's row, fused: per strip of up to `strip` pixels, the
    -- depthwise step (a dwn strip of a fixed geometry) into a stack tile of
    -- strip x C floats, then the pointwise step (the conv strip, a 1x1 kernel
    -- over the tile), both inlined into one loop. Called as a depthwise row
    -- and then a pointwise row over a chunk, the two ran one after the other:
    -- on SeparableConv1D k3 dilation 8 over 32 channels the depthwise step
    -- cost 52 us apart and 24 us in the avx2 target's loop, where its loads
    -- and multiply-adds run in the pointwise step's free issue slots.
    -- Named _row_k<kh>x<kw>_c<C>s<S>, one per dwn fixed geometry; the scalar
    -- variant calls the dwn kernel shape's strips.
    name = "sep", template = "templates/microkernel_sep.c.in", geometry = "convgen_uk_dw",
    fuses = { dw = "dwn", pw = "conv" }, strip = 6,
    what = "a separable row: depthwise (depth_multiplier 1, a dwn fixed geometry), then pointwise over it",
  },
  {
    -- Whole small planes of 1024 channels or a multiple (pixels a multiple of
    -- 4 KiB apart: a pixel's channel c maps to one L1 set in every pixel):
    -- a block of 64 channels of the input rows read is copied into a stack
    -- buffer, then each 16-channel tile computes the output rows [oh0, oh1)
    -- from it, written out with the padding's taps left out (the avx2
    -- target's simd.plane, as a precompiled function). Named
    -- _<in_h>x<in_w>_k<kh>x<kw>_s<stride>, 'same' padding; g->c channels (a
    -- multiple of 64); the scalar variant loops over the same geometry.
    -- (block, segment: the channels copied at a time and the output pixels
    -- per run of accumulators, the avx2 target's planes too.)
    name = "dwplane", template = "templates/plane_depthwise.c.in", geometry = "convgen_uk_dw",
    planes = { { in_h = 7, in_w = 7, k_h = 3, k_w = 3, stride = 1 } }, block = 64, segment = 7,
    what = "a whole depthwise plane, depth_multiplier 1, rows [oh0, oh1), kernel packed",
  },
  {
    -- Whole planes of any size with 'same' padding at stride 1, no dilation,
    -- depth_multiplier 1, for the narrow layers' kernel shape and channel
    -- counts (the dwn kind's fixed geometries), the kernel in Keras layout:
    -- one call for rows [oh0, oh1) of an item (g->in_h x g->in_w), every
    -- border pixel a strip with its taps written out. Made for small planes,
    -- where a driver's calls per row and per border strip, and the border
    -- strips' run-time tap loops, cost a quarter of the time (16x16x16).
    -- Named _k<kh>x<kw>_c<channels>; strips of up to `strip` pixels.
    name = "dwsame", template = "templates/microkernel_dwsame.c.in", geometry = "convgen_uk_dw",
    same = { taps = { 3, 3 }, channels = { 16, 32, 64, 128 } }, strip = 8,
    what = "a whole depthwise plane, 'same' padding, stride 1, depth_multiplier 1, rows [oh0, oh1)",
  },
  {
    -- Conv2D 3x3 at stride 1, 'same' or 'valid', by Winograd's F(2x2, 3x3):
    -- the 2x2 output tiles of the rows asked for, in blocks of `tile` tiles;
    -- each block's 4x4 input patches are transformed into a stack buffer, 16
    -- products of the block by the transformed kernel (convgen_uk_wino_pack:
    -- 16 x ci x co floats, [point][co / 16][ci][16]) run on the conv kind's
    -- register tile, and their results are transformed back, bias and
    -- activation added. 2.25x fewer multiply-adds than the direct code; make
    -- bench (the avx2 target writes the same code into the layer): 1.8-2.0x
    -- its speed at 56x56x64, 28x28x128 and 14x14x256. At 7x7x512 the 16 MiB
    -- transformed kernel, streamed again for each block, no longer stays in
    -- cache: 0.75-0.9x, hence max_c. Input and output channels at most max_c
    -- (stack: 16 x tile x (ci + co) floats), output channels a multiple of
    -- 16; rows [oh0, oh1).
    name = "wino", template = "templates/microkernel_wino.c.in", geometry = "convgen_uk_wino",
    winograd = { tile = 6, max_c = 256 },
    what = "Conv2D 3x3, stride 1, 'same' or 'valid', by Winograd F(2x2, 3x3) over a transformed kernel, rows [oh0, oh1)",
  },
  {
    -- Any depth multiplier: a vector's input channels loaded (masked) and
    -- spread over its lanes with a permute. 8-channel tiles and strips of up
    -- to 8 pixels, so that the 3x3 variant at stride 1 loads and spreads each
    -- input column once per kernel row, for the 3 taps reading it (with
    -- 16-channel tiles, the lane indices and masks of both vectors leave no
    -- registers for it): dw 3x3 56x56x32 dm2 under tcc, 19-22 -> 33-37 GFLOP/s.
    -- Tiles whose 4 input channels from the first exist broadcast those 4 to
    -- both halves and spread them with an in-lane permute (no mask, no
    -- lane-crossing permute), and the 3x3 variant takes multiplier 2 in a
    -- function with constant lane indices: 33-37 -> 46-53 GFLOP/s.
    name = "dwm", template = "templates/microkernel_depthwise.c.in", geometry = "convgen_uk_dw",
    mr = { 1, 2, 3, 4, 5, 6, 7, 8 }, tile = 8,
    fixed_taps = { { 3, 3 } },
    what = "depthwise convolution with any depth_multiplier (geometry field dm), kernel in Keras layout",
  },
}

-- Activations the microkernels apply before storing (geometry field act).
-- Any other activation is applied by the caller to the stored strip.
M.activations = { linear = 0, relu = 1, relu6 = 2 }

M.row_template = "templates/microkernel_row.c.in"

-- The ISA-neutral name a driver calls, and a variant's own name; mr: the
-- strip width, or 0 for the row variant; taps: {kh, kw} for a fixed-shape
-- variant ({kh, kw, c = channels, s = stride} for a fixed geometry), or nil.
local function kind_named(kind_name)
  for _, kind in ipairs(M.kinds) do
    if kind.name == kind_name then return kind end
  end
  error("no microkernel kind " .. kind_name)
end
local function tile_of(kind_name)
  for _, kind in ipairs(M.kinds) do
    if kind.name == kind_name then return kind.tile or 16 end
  end
  error("no microkernel kind " .. kind_name)
end
local function suffix(kind, mr, taps)
  return "_" .. (mr == 0 and "row" or (mr .. "x" .. tile_of(kind))) .. (taps and ("_k" .. taps[1] .. "x" .. taps[2]) or "")
    .. (taps and taps.c and ("_c" .. taps.c .. "s" .. taps.s) or "")
end
function M.generic_name(kind, mr, taps) return "convgen_uk_" .. kind .. suffix(kind, mr, taps) end
function M.variant_name(kind, isa, mr, taps) return "convgen_uk_" .. kind .. "_" .. isa .. suffix(kind, mr, taps) end

-- A plane's whole geometry, as the IR names it: 'same' padding, no dilation,
-- the channel count g->c (C in the variant).
local function plane_geometry(pl)
  local S = pl.stride
  local oh, ow = (pl.in_h + S - 1) // S, (pl.in_w + S - 1) // S
  return { in_h = pl.in_h, in_w = pl.in_w, in_c = "C", out_h = oh, out_w = ow, k_h = pl.k_h, k_w = pl.k_w,
           s_h = S, s_w = S, d_h = 1, d_w = 1,
           pad_top = math.max((oh - 1) * S + pl.k_h - pl.in_h, 0) // 2,
           pad_left = math.max((ow - 1) * S + pl.k_w - pl.in_w, 0) // 2 }
end

-- Every variant: { kind, isa, mr, taps, name, generic }, kinds, then kernel
-- shapes (run-time ranges first), then ISAs, then widths, then the row
-- variant (mr 0, with strips: the names of the widths it calls, by width).
function M.variants()
  local out = {}
  for _, kind in ipairs(M.kinds) do
    local shapes = { false }
    for _, t in ipairs(kind.fixed_taps or {}) do shapes[#shapes + 1] = t end
    for _, t in ipairs(kind.stand_in_taps or {}) do shapes[#shapes + 1] = { t[1], t[2], stand_in = true } end
    for _, g in ipairs(kind.fixed_geometries or {}) do
      for _, c in ipairs(g.channels) do
        for _, s in ipairs(g.strides) do shapes[#shapes + 1] = { g.taps[1], g.taps[2], c = c, s = s } end
      end
    end
    for _, pl in ipairs(kind.planes or {}) do
      for _, isa in ipairs(M.isas) do
        out[#out + 1] = { kind = kind, isa = isa, mr = 0, plane = plane_geometry(pl),
                          name = M.plane_name(kind.name, isa.name, pl), generic = M.plane_name(kind.name, nil, pl) }
      end
    end
    if kind.same then
      -- the template writes the column windows of a kernel 3 wide
      assert(kind.same.taps[2] == 3 and kind.same.taps[1] % 2 == 1, "dwsame: kernels k x 3, k odd")
      for _, c in ipairs(kind.same.channels) do
        local shape = { c = c, k_h = kind.same.taps[1], k_w = kind.same.taps[2] }
        for _, isa in ipairs(M.isas) do
          out[#out + 1] = { kind = kind, isa = isa, mr = 0, same = shape, name = M.same_name(kind.name, isa.name, shape),
                            generic = M.same_name(kind.name, nil, shape) }
        end
      end
    end
    if kind.fuses then
      -- one row variant per fixed geometry of the depthwise kind
      local dwk = kind_named(kind.fuses.dw)
      for _, g in ipairs(dwk.fixed_geometries) do
        for _, c in ipairs(g.channels) do
          for _, s in ipairs(g.strides) do
            local taps = { g.taps[1], g.taps[2], c = c, s = s }
            for _, isa in ipairs(M.isas) do
              local dw_taps = isa.geometries == false and { g.taps[1], g.taps[2] } or taps
              local dw_strips, pw_strips = {}, {}
              for w = 1, kind.strip do
                dw_strips[w] = M.variant_name(kind.fuses.dw, isa.name, w, dw_taps)
                pw_strips[w] = M.variant_name(kind.fuses.pw, isa.name, w)
              end
              out[#out + 1] = { kind = kind, isa = isa, mr = 0, taps = taps, fused = true,
                                dw_strips = dw_strips, pw_strips = pw_strips,
                                name = M.variant_name(kind.name, isa.name, 0, taps),
                                generic = M.generic_name(kind.name, 0, taps) }
            end
          end
        end
      end
    end
    if kind.winograd then
      for _, isa in ipairs(M.isas) do
        out[#out + 1] = { kind = kind, isa = isa, mr = 0, wino = true, name = M.wino_name(isa.name),
                          generic = M.wino_name() }
      end
    end
    if kind.planes or kind.same or kind.fuses or kind.winograd then shapes = {} end
    for _, taps in ipairs(shapes) do
      for _, isa in ipairs(M.isas) do
        if taps and taps.c and isa.geometries == false then goto next_isa end
        if taps and taps.stand_in and isa.geometries ~= false then goto next_isa end
        local strips = {}
        for _, mr in ipairs(kind.mr) do
          out[#out + 1] = { kind = kind, isa = isa, mr = mr, taps = taps or nil,
                            name = M.variant_name(kind.name, isa.name, mr, taps or nil),
                            generic = M.generic_name(kind.name, mr, taps or nil) }
          strips[mr] = out[#out].name
        end
        out[#out + 1] = { kind = kind, isa = isa, mr = 0, taps = taps or nil, strips = strips,
                          name = M.variant_name(kind.name, isa.name, 0, taps or nil),
                          generic = M.generic_name(kind.name, 0, taps or nil) }
        ::next_isa::
      end
    end
  end
  return out
end

-- The fixed kernel shape of a kind matching k_h x k_w, or nil; with c
-- channels, stride s and dilation d along the width, a fixed geometry first
-- (dilation 1, or any at stride 1 where the geometry is marked dilated).
function M.fixed_taps(kind_name, k_h, k_w, c, s, d)
  for _, kind in ipairs(M.kinds) do
    if kind.name == kind_name then
      for _, g in ipairs(kind.fixed_geometries or {}) do
        if g.taps[1] == k_h and g.taps[2] == k_w and (d == 1 or g.dilated and s == 1) then
          for _, gc in ipairs(g.channels) do
            for _, gs in ipairs(g.strides) do
              if gc == c and gs == s then return { k_h, k_w, c = c, s = s } end
            end
          end
        end
      end
      for _, t in ipairs(kind.fixed_taps or {}) do
        if t[1] == k_h and t[2] == k_w then return t end
      end
    end
  end
  return nil
end

-- The fused separable row (kind sep) for a depthwise fixed geometry (what
-- fixed_taps gives for the dwn kind: {kh, kw, c =, s =}), as its ISA-neutral
-- name and the pixels of its widest strip, or nil.
function M.sep(dw_taps)
  if not (dw_taps and dw_taps.c) then return nil end
  for _, kind in ipairs(M.kinds) do
    if kind.fuses then return M.generic_name(kind.name, 0, dw_taps), kind.strip end
  end
  return nil
end

-- The wino variant's name (isa nil: the ISA-neutral one).
function M.wino_name(isa_name)
  return "convgen_uk_wino" .. (isa_name and ("_" .. isa_name) or "") .. "_f2k3"
end

-- The Winograd kind (wino) for a dense layer it is made for, as its
-- ISA-neutral name and the kind's winograd table, or nil: Conv2D 3x3,
-- stride 1, no dilation, 'same' or 'valid' padding (1 or 0 on every side),
-- input channels a multiple of 8 and output channels of 16, both at most
-- the kind's max_c.
function M.wino(ir)
  for _, kind in ipairs(M.kinds) do
    if kind.winograd then
      local max = kind.winograd.max_c
      local pad = ir.pad_top
      local ok = ir.rank == 2 and ir.k_h == 3 and ir.k_w == 3 and ir.s_h == 1 and ir.s_w == 1 and ir.d_h == 1
        and ir.d_w == 1 and (pad == 0 or pad == 1) and ir.pad_left == pad
        and ir.out_h == ir.in_h + 2 * pad - 2 and ir.out_w == ir.in_w + 2 * pad - 2
        and ir.in_c % 8 == 0 and ir.out_c % 16 == 0 and ir.in_c <= max and ir.out_c <= max
      if ok then return M.wino_name(), kind.winograd end
      return nil
    end
  end
  return nil
end

-- How planes are tiled: { block, segment } (the dwplane kind's).
function M.plane_tiling()
  for _, kind in ipairs(M.kinds) do
    if kind.planes then return { block = kind.block, segment = kind.segment } end
  end
  error("no plane kind")
end

-- A plane variant's name (isa nil: the ISA-neutral one).
function M.plane_name(kind_name, isa_name, pl)
  return "convgen_uk_" .. kind_name .. (isa_name and ("_" .. isa_name) or "") .. "_" .. pl.in_h .. "x" .. pl.in_w
    .. "_k" .. pl.k_h .. "x" .. pl.k_w .. "_s" .. pl.stride
end

-- A dwsame variant's name (isa nil: the ISA-neutral one).
function M.same_name(kind_name, isa_name, shape)
  return "convgen_uk_" .. kind_name .. (isa_name and ("_" .. isa_name) or "") .. "_k" .. shape.k_h .. "x" .. shape.k_w
    .. "_c" .. shape.c
end

local function same_kind()
  for _, kind in ipairs(M.kinds) do
    if kind.same then return kind end
  end
  error("no dwsame kind")
end

-- Whether a layer has the dwsame kind's kernel shape, 'same' padding at
-- stride 1 and no dilation (any channel count).
function M.same_shape(ir)
  local sm = same_kind().same
  return ir.s_h == 1 and ir.s_w == 1 and ir.d_h == 1 and ir.d_w == 1 and ir.out_h == ir.in_h
    and ir.out_w == ir.in_w and ir.pad_top == (ir.k_h - 1) // 2 and ir.pad_left == (ir.k_w - 1) // 2
    and sm.taps[1] == ir.k_h and sm.taps[2] == ir.k_w
end

-- The dwsame kind's widest strip.
function M.same_strip() return same_kind().strip end

-- The dwsame variant for a depthwise layer (depth_multiplier 1) of that
-- shape and a channel count made for, as its ISA-neutral name, or nil.
function M.same(ir)
  if not M.same_shape(ir) then return nil end
  local kind = same_kind()
  for _, c in ipairs(kind.same.channels) do
    if c == ir.in_c then return M.same_name(kind.name, nil, { c = c, k_h = ir.k_h, k_w = ir.k_w }) end
  end
  return nil
end

-- The plane variant for a depthwise layer (depth_multiplier 1, no
-- dilation) whose input, output and padding are a plane's, as its
-- ISA-neutral name, or nil.
function M.plane(ir)
  for _, kind in ipairs(M.kinds) do
    for _, pl in ipairs(kind.planes or {}) do
      local g = plane_geometry(pl)
      local same = true
      for _, f in ipairs({ "in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "s_h", "s_w", "d_h", "d_w", "pad_top",
                           "pad_left" }) do
        same = same and g[f] == ir[f]
      end
      if same then return M.plane_name(kind.name, nil, pl) end
    end
  end
  return nil
end

-- The widest strip of a kind (the planner's register tile).
function M.widest(kind_name)
  for _, kind in ipairs(M.kinds) do
    if kind.name == kind_name then return kind.mr[#kind.mr] end
  end
  error("no microkernel kind " .. kind_name)
end

return M
