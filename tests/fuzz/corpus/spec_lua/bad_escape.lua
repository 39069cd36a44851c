local f = io.open("/etc/passwd")
return Conv2D { input_shape = {8, 8, 3}, filters = 4, kernel_size = 3 }
