# Every dependency is a Debian 12 package; nothing is downloaded.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_program(ACTSVC_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_program(ACTSVC_GRPC_PYTHON_PLUGIN grpc_python_plugin)
if(ACTSVC_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
# civetweb serves the Prometheus endpoint. Debian's libcivetweb-dev ships a
# CMake config that fails without the civetweb binary package (it references
# /usr/bin/civetweb) and no pkg-config file, so it is found by hand.
find_path(ACTSVC_CIVETWEB_INCLUDE_DIR civetweb.h REQUIRED)
find_library(ACTSVC_CIVETWEB_LIBRARY civetweb REQUIRED)
add_library(actsvc_civetweb INTERFACE)
target_include_directories(actsvc_civetweb SYSTEM INTERFACE
    ${ACTSVC_CIVETWEB_INCLUDE_DIR})
target_link_libraries(actsvc_civetweb INTERFACE
    ${ACTSVC_CIVETWEB_LIBRARY} Threads::Threads ${CMAKE_DL_LIBS})
# rapidjson (header-only, Debian's rapidjson-dev) writes and reads the KServe
# v2 REST bodies.
find_path(ACTSVC_RAPIDJSON_INCLUDE_DIR rapidjson/document.h REQUIRED)
# rapidjson 1.1.0 (Debian 12's) adds an offset to its parse stack's null
# pointer before the first allocation (internal/stack.h, Reserve; fixed
# upstream after that release), which clang's UBSan reports on every parse.
# The files that include rapidjson are built without that one check.
set(ACTSVC_RAPIDJSON_COMPILE_OPTIONS "")
if(ACTSVC_SANITIZE MATCHES "undefined")
  set(ACTSVC_RAPIDJSON_COMPILE_OPTIONS -fno-sanitize=pointer-overflow)
endif()
