local layers = {}
for _, f in ipairs({ 8, 16 }) do layers[#layers + 1] = f end
return SeparableConv1D {
  input_shape = { 50, 8 }, filters = layers[#layers], kernel_size = 33,
  padding = "same", activation = "swish",
}
