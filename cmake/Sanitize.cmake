# ACTSVC_SANITIZE=address,undefined builds everything with those sanitizers.
if(ACTSVC_SANITIZE)
  set(_actsvc_san_flags -fsanitize=${ACTSVC_SANITIZE} -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
  add_compile_options(${_actsvc_san_flags})
  add_link_options(${_actsvc_san_flags})
  # Tests that would run for many minutes under the sanitizers check less
  # there (ACTSVC_SANITIZED); the plain build checks everything.
  add_compile_definitions(ACTSVC_SANITIZED)
  message(STATUS "actsvc: sanitizers ${ACTSVC_SANITIZE}")
endif()
