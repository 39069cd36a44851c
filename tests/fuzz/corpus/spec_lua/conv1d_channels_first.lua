return Conv1D {
  input_shape = { 6, 30 }, data_format = "channels_first",
  filters = 5, kernel_size = { 4 }, strides = 2, padding = "valid", groups = 1,
  activation = string.lower("SOFTMAX"),
}
