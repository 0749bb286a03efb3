# actsvc-soak, the driver of bench/soak.sh (see there). It needs no Google
# Benchmark, so a build without bench/ (the sanitized CI build) also makes it,
# from tests/soak; either way it lands in <build>/bench, where soak.sh looks.
# Its table of cases is in files by concern (soak_table.h); the driver's
# calls, answers and checks are the load library's (client/).
add_executable(actsvc-soak
    ${PROJECT_SOURCE_DIR}/bench/soak_deadlines.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_driver.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_invalid.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_kserve.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_main.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_table.cc
    ${PROJECT_SOURCE_DIR}/bench/soak_valid.cc)
target_include_directories(actsvc-soak PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(actsvc-soak PRIVATE
    actsvc_bench_lib actsvc_client_lib actsvc_core actsvc_proto gRPC::grpc++ absl::flags
    absl::flags_parse absl::flags_usage absl::strings absl::time)
set_target_properties(actsvc-soak PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
