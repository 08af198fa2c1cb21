# libwebsockets: our static build (packaging/deps/build-lws.sh: Debian's
# 4.1.6 source plus packaging/deps/lws/*.patch, libuv built in, OpenSSL) or
# the system's shared one (with its dlopen()ed libwebsockets-evlib-uv plugin).
#
#   -DTUNNELD_LWS=auto    (default) static when the script's build exists or
#                         can be made here, else system, with a warning
#   -DTUNNELD_LWS=static  the static build, made now if needed; an error if not
#   -DTUNNELD_LWS=system  find_package(libwebsockets): the distribution's
#
# Defines the target td_lws, which the daemon links, and TD_LWS_KIND.
set(TUNNELD_LWS "auto" CACHE STRING "libwebsockets: auto, static (our patched build) or system")
set_property(CACHE TUNNELD_LWS PROPERTY STRINGS auto static system)

set(_td_lws_script ${CMAKE_SOURCE_DIR}/packaging/deps/build-lws.sh)
set(_td_lws_kind ${TUNNELD_LWS})
if(_td_lws_kind STREQUAL "auto" AND (WIN32 OR CMAKE_CROSSCOMPILING OR NOT EXISTS ${_td_lws_script}))
  set(_td_lws_kind system)
endif()

if(_td_lws_kind STREQUAL "auto" OR _td_lws_kind STREQUAL "static")
  # A changed patch or script changes the build's key: configure again.
  file(GLOB _td_lws_patches ${CMAKE_SOURCE_DIR}/packaging/deps/lws/*.patch)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_td_lws_script} ${_td_lws_patches})
  execute_process(COMMAND sh ${_td_lws_script} --prefix
                  OUTPUT_VARIABLE _td_lws_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _td_lws_rc)
  if(NOT _td_lws_rc EQUAL 0)
    message(STATUS "libwebsockets: building the static lws (${_td_lws_prefix})")
    execute_process(COMMAND sh ${_td_lws_script}
                    OUTPUT_VARIABLE _td_lws_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE _td_lws_rc)
  endif()
  if(NOT _td_lws_rc EQUAL 0)
    if(_td_lws_kind STREQUAL "static")
      message(FATAL_ERROR "libwebsockets: packaging/deps/build-lws.sh failed (see above); "
                          "-DTUNNELD_LWS=system uses the distribution's lws")
    endif()
    message(WARNING "libwebsockets: the static build failed; using the system's lws "
                    "(slower client receive path, needs libwebsockets-evlib-uv at run time)")
    set(_td_lws_kind system)
  else()
    set(_td_lws_kind static)
  endif()
endif()

add_library(td_lws INTERFACE)
# A build tree configured before with the other kind has libwebsockets_DIR
# cached, which find_package() would follow whatever PATHS say: the static
# lws's headers with the system's library (and its dlopen()ed plugin) then
# meet in one process.  Forget it whenever it is not the kind chosen now.
if(_td_lws_kind STREQUAL "static" AND NOT libwebsockets_DIR STREQUAL "${_td_lws_prefix}/lib/cmake/libwebsockets")
  unset(libwebsockets_DIR CACHE)
elseif(NOT _td_lws_kind STREQUAL "static" AND libwebsockets_DIR MATCHES "/build/deps/lws-")
  unset(libwebsockets_DIR CACHE)
endif()
if(_td_lws_kind STREQUAL "static")
  find_package(libwebsockets CONFIG REQUIRED PATHS ${_td_lws_prefix}/lib/cmake/libwebsockets
               NO_DEFAULT_PATH)
  # The static target's interface names libssl, libcrypto and libuv, but not
  # its headers: ours (with their lws_config.h) must win over /usr/include's.
  target_include_directories(td_lws BEFORE INTERFACE ${_td_lws_prefix}/include)
  target_link_libraries(td_lws INTERFACE websockets ${LIBWEBSOCKETS_DEP_LIBS})
  message(STATUS "libwebsockets: static, ${_td_lws_prefix}")
else()
  find_package(libwebsockets CONFIG REQUIRED)
  target_link_libraries(td_lws INTERFACE websockets_shared)
  message(STATUS "libwebsockets: system (shared, evlib plugin)")
endif()
set(TD_LWS_KIND ${_td_lws_kind})
