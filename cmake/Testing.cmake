# One way to register a GoogleTest executable as ctest tests, for every
# folder under tests/:
#
#   actsvc_gtest(<target> SOURCES <file>... LIBS <library>... PREFIX <prefix>
#                [TIMEOUT <s>] [DISCOVERY_TIMEOUT <s>] [LABELS <label>...]
#                [SERIAL] [PROCESSES])
#
# builds <target> from SOURCES against LIBS (the repository root on its
# include path) and discovers its tests as <prefix><Suite>.<Test>, each with
# TIMEOUT seconds (60 by default) and LABELS. SERIAL: the tests run alone
# (they time things, or start several servers). PROCESSES: the tests run the
# built actsvc-server and actsvc, whose paths they get as ACTSVC_SERVER_PATH
# and ACTSVC_CLI_PATH, and which are rebuilt before them.
include(GoogleTest)

function(actsvc_gtest target)
  cmake_parse_arguments(T "SERIAL;PROCESSES" "PREFIX;TIMEOUT;DISCOVERY_TIMEOUT"
                        "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_PREFIX)
    message(FATAL_ERROR "actsvc_gtest(${target}): PREFIX is required")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  if(NOT T_DISCOVERY_TIMEOUT)
    set(T_DISCOVERY_TIMEOUT 30)
  endif()
  add_executable(${target} ${T_SOURCES})
  target_link_libraries(${target} PRIVATE ${T_LIBS})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR})
  if(T_PROCESSES)
    target_compile_definitions(${target} PRIVATE
        ACTSVC_SERVER_PATH="$<TARGET_FILE:actsvc-server>"
        ACTSVC_CLI_PATH="$<TARGET_FILE:actsvc>")
    add_dependencies(${target} actsvc-server actsvc)
  endif()
  set(_properties TIMEOUT ${T_TIMEOUT})
  if(T_LABELS)
    list(APPEND _properties LABELS ${T_LABELS})
  endif()
  if(T_SERIAL)
    list(APPEND _properties RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${target}
      TEST_PREFIX "${T_PREFIX}"
      DISCOVERY_TIMEOUT ${T_DISCOVERY_TIMEOUT}
      PROPERTIES ${_properties})
endfunction()

# A test run by Debian's Python (a python3 earlier on PATH may lack its
# modules):
#
#   actsvc_python_test(<name> SCRIPT <file> [ARGS <arg>...] [IMPORTS <module>...]
#                      [TARGETS <target>...] [LABELS <label>...] [TIMEOUT <s>])
#
# adds ctest <name> running `python3 SCRIPT ARGS`, when every target of
# TARGETS exists and ACTSVC_TEST_PYTHON imports every module of IMPORTS;
# otherwise it says why the test is skipped.
set(ACTSVC_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with grpcio, numpy, scipy and matplotlib for the Python tests")

function(actsvc_python_test name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT" "ARGS;IMPORTS;TARGETS;LABELS"
                        ${ARGN})
  foreach(_target ${T_TARGETS})
    if(NOT TARGET ${_target})
      message(STATUS "actsvc: no ${_target} target; ${name} skipped")
      return()
    endif()
  endforeach()
  if(T_IMPORTS)
    string(REPLACE ";" ", " _modules "${T_IMPORTS}")
    execute_process(
      COMMAND ${ACTSVC_TEST_PYTHON} -c "import ${_modules}"
      RESULT_VARIABLE _missing OUTPUT_QUIET ERROR_QUIET)
    if(_missing)
      message(STATUS "actsvc: ${ACTSVC_TEST_PYTHON} cannot import ${_modules} "
                     "(apt install python3-grpcio python3-numpy python3-scipy "
                     "python3-matplotlib); ${name} skipped")
      return()
    endif()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${name} COMMAND ${ACTSVC_TEST_PYTHON} ${T_SCRIPT} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}"
                       TIMEOUT ${T_TIMEOUT})
endfunction()
