# convgen.cmake: convgen_add_model(), which generates a layer's C at build time.
#
#   convgen_add_model(<target> SPEC <spec> [WEIGHTS <dir>] [NAME <name>] [OPTIONS <option>...])
#
# Runs `convgen generate` on SPEC (a Keras JSON or Lua spec) with the .npy
# files of WEIGHTS, writing <name>.c and <name>.h to
# ${CMAKE_CURRENT_BINARY_DIR}/convgen/<target>/, adds the .c to <target> and
# that directory to its include path, and links libm (the activations need it).
# NAME is the C function (default: the spec file's name without extension);
# OPTIONS are more `convgen generate` options, e.g. --target avx2 or
# --weights-at-runtime (WEIGHTS is then optional). Relative paths are taken
# from the current source directory. Call it in the directory that defines
# <target>.
#
# The layer is regenerated when the spec, any .npy in WEIGHTS, the directory
# itself (a file removed) or the convgen binary changes; .npy files added later are noticed at the next build
# (CONFIGURE_DEPENDS). CONVGEN_EXECUTABLE names the generator.
#
# Included by convgenConfig.cmake; it can also be included on its own with
# CONVGEN_EXECUTABLE set to a convgen binary.

include_guard(GLOBAL)

function(convgen_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "SPEC;WEIGHTS;NAME" "OPTIONS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "convgen_add_model: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "convgen_add_model: \"${target}\" is not a target (define it first, in this directory)")
  endif()
  if(NOT CONVGEN_EXECUTABLE)
    message(FATAL_ERROR "convgen_add_model: CONVGEN_EXECUTABLE is not set (use find_package(convgen))")
  endif()
  foreach(option IN LISTS arg_OPTIONS)
    if(option MATCHES "^(-o|--output|--header|--name|-w|--weights)(=.*)?$")
      message(FATAL_ERROR "convgen_add_model(${target}): ${option} is set by convgen_add_model itself; "
                          "use SPEC, WEIGHTS and NAME")
    endif()
  endforeach()
  if(NOT arg_SPEC)
    message(FATAL_ERROR "convgen_add_model(${target}): SPEC <file> is required")
  endif()
  get_filename_component(spec "${arg_SPEC}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${spec}" OR IS_DIRECTORY "${spec}")
    message(FATAL_ERROR "convgen_add_model(${target}): spec ${spec} does not exist")
  endif()

  set(weights_args "")
  set(weight_files "")
  if(arg_WEIGHTS)
    get_filename_component(weights "${arg_WEIGHTS}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT IS_DIRECTORY "${weights}")
      message(FATAL_ERROR "convgen_add_model(${target}): weights directory ${weights} does not exist")
    endif()
    set(weights_args -w "${weights}")
    # CONFIGURE_DEPENDS: a .npy added or removed later re-runs CMake, which
    # updates this list; a changed one is a plain dependency. The directory
    # itself is one too, so that removing a file the layer needs regenerates
    # (and fails) instead of keeping the old weights.
    # (a whole model's weights sit one directory deeper: <layer>/<weight>.npy)
    file(GLOB weight_files CONFIGURE_DEPENDS "${weights}/*.npy" "${weights}/*/*.npy")
    list(APPEND weight_files "${weights}")
  elseif(NOT "--weights-at-runtime" IN_LIST arg_OPTIONS AND NOT spec MATCHES "\\.(keras|h5)$")
    message(FATAL_ERROR "convgen_add_model(${target}): WEIGHTS <dir> is required (or OPTIONS --weights-at-runtime; "
                        "a .keras or .h5 model holds its own)")
  endif()

  if(arg_NAME)
    set(name "${arg_NAME}")
  else()
    get_filename_component(name "${spec}" NAME_WE)
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "convgen_add_model(${target}): \"${name}\" is not a C identifier; give NAME <name>")
  endif()
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/convgen/${target}")
  set(out_c "${out_dir}/${name}.c")
  set(out_h "${out_dir}/${name}.h")

  # convgen leaves an output whose content is unchanged untouched; the touch
  # makes both newer than the spec, so a build that regenerated identical
  # code is not followed by builds that regenerate it again.
  add_custom_command(
    OUTPUT "${out_c}" "${out_h}"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${out_dir}"
    COMMAND "${CONVGEN_EXECUTABLE}" generate "${spec}" ${weights_args} --name "${name}"
            ${arg_OPTIONS} -o "${out_c}" --header "${out_h}"
    COMMAND "${CMAKE_COMMAND}" -E touch "${out_c}" "${out_h}"
    DEPENDS "${spec}" ${weight_files} "${CONVGEN_EXECUTABLE}"
    COMMENT "convgen: generating ${name}.c and ${name}.h from ${arg_SPEC}"
    VERBATIM)

  target_sources("${target}" PRIVATE "${out_c}" "${out_h}")
  target_include_directories("${target}" PRIVATE "${out_dir}")
  # Added as properties rather than with target_link_libraries, so that the
  # caller stays free to use either signature of target_link_libraries.
  if(UNIX)
    set_property(TARGET "${target}" APPEND PROPERTY LINK_LIBRARIES m)
    get_target_property(type "${target}" TYPE)
    if(type STREQUAL "STATIC_LIBRARY" OR type STREQUAL "OBJECT_LIBRARY")
      set_property(TARGET "${target}" APPEND PROPERTY INTERFACE_LINK_LIBRARIES "$<LINK_ONLY:m>")
    endif()
  endif()
endfunction()
