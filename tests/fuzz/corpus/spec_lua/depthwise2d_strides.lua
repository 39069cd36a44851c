return DepthwiseConv2D { input_shape = { 9, 7, 5 }, kernel_size = { 3, 2 }, strides = { 2, 1 },
  padding = "valid", depth_multiplier = 1, activation = "relu6" }
