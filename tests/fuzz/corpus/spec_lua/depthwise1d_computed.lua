local k = 2 + 1
local dil = {}
for i = 1, 1 do dil[i] = 2 ^ i // 1 end
return DepthwiseConv1D {
  input_shape = { 20, 4 }, kernel_size = k, dilation_rate = dil[1],
  padding = "causal", depth_multiplier = 3, use_bias = false, activation = "tanh",
}
