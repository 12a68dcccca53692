# The fuzz targets, shared by the libFuzzer build (tests/fuzz/CMakeLists.txt,
# FEATPOOL_FUZZ) and the replay tests of the normal build (tests/CMakeLists.txt).
# Each target is one source defining LLVMFuzzerTestOneInput.
set(FEATPOOL_FUZZ_TARGETS arguments hdf5_list npy_header npy_pool npz safetensors torch_pt)
set(FEATPOOL_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
find_package(Threads REQUIRED)

# What the targets share: inputs as files and pipes, and pooling as the CLI
# pools. The targets read files through the modules, which featpool loads
# from beside the executable, so both are built with them.
function(featpool_add_fuzz_support name)
  add_library(${name} STATIC ${FEATPOOL_FUZZ_DIR}/fuzz_inputs.cpp
                             ${FEATPOOL_FUZZ_DIR}/pool_like_cli.cpp)
  target_include_directories(${name} PUBLIC ${FEATPOOL_FUZZ_DIR})
  target_link_libraries(${name} PUBLIC featpool_lib Threads::Threads PRIVATE featpool_warnings)
  add_dependencies(${name} featpool_hdf5 featpool_zip)
endfunction()
