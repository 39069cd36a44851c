# convgenConfig.cmake: what find_package(convgen) loads.
#
#   find_package(convgen REQUIRED)
#   add_executable(app main.c)
#   convgen_add_model(app SPEC layer.json WEIGHTS layer.weights)   # see convgen.cmake
#   target_link_libraries(app PRIVATE convgen::convgen)           # only for convgen.h or convgen_npy.h
#
# Defines CONVGEN_EXECUTABLE (cache; set it to use another generator), the
# function convgen_add_model() and the imported target convgen::convgen: the
# static run-time library with its include directory and what it links.
# Paths are found from this file's place, PREFIX/lib/cmake/convgen/, so an
# installed tree may be moved.

if(CMAKE_VERSION VERSION_LESS 3.12)
  set(convgen_FOUND FALSE)
  set(convgen_NOT_FOUND_MESSAGE "convgen's CMake package needs CMake 3.12 or later, this is ${CMAKE_VERSION}")
  return()
endif()

get_filename_component(_convgen_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

find_program(CONVGEN_EXECUTABLE convgen PATHS "${_convgen_prefix}/bin" NO_DEFAULT_PATH
             DOC "the convgen generator that convgen_add_model() runs")
if(NOT CONVGEN_EXECUTABLE)
  set(convgen_FOUND FALSE)
  set(convgen_NOT_FOUND_MESSAGE "no convgen binary in ${_convgen_prefix}/bin (set CONVGEN_EXECUTABLE)")
  return()
endif()
if(NOT EXISTS "${_convgen_prefix}/lib/libconvgen.a" OR NOT EXISTS "${_convgen_prefix}/include/convgen.h")
  set(convgen_FOUND FALSE)
  set(convgen_NOT_FOUND_MESSAGE "incomplete install in ${_convgen_prefix}: lib/libconvgen.a or include/convgen.h is missing")
  return()
endif()

include(CMakeFindDependencyMacro)
find_dependency(Threads)

if(NOT TARGET convgen::convgen)
  add_library(convgen::convgen STATIC IMPORTED)
  set_target_properties(convgen::convgen PROPERTIES
    IMPORTED_LOCATION "${_convgen_prefix}/lib/libconvgen.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES C
    INTERFACE_INCLUDE_DIRECTORIES "${_convgen_prefix}/include"
    INTERFACE_LINK_LIBRARIES "lua5.4;-l:libtcc.a;zip;hdf5_serial;${CMAKE_DL_LIBS};Threads::Threads;m")
endif()

include("${CMAKE_CURRENT_LIST_DIR}/convgen.cmake")
unset(_convgen_prefix)
