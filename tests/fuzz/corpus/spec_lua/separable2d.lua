return SeparableConv2D {
  input_shape = { 16, 16, 8 },
  filters = 16, kernel_size = 3, padding = "same",
  depth_multiplier = 2, activation = "relu",
}
