return Conv2D { input_shape = {8, 8, 3}, filters = 4, kernel_size = 3, padding = "same" }
