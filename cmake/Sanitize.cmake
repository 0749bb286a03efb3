# ACTSVC_SANITIZE=address,undefined builds everything with those sanitizers.
if(ACTSVC_SANITIZE)
  set(_actsvc_san_flags -fsanitize=${ACTSVC_SANITIZE} -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
  add_compile_options(${_actsvc_san_flags})
  add_link_options(${_actsvc_san_flags})
  message(STATUS "actsvc: sanitizers ${ACTSVC_SANITIZE}")
endif()
