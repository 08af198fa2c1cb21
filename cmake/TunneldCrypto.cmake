# The symmetric-crypto backend behind common/crypto (backend.h): AES-CTR,
# AES-ECB and HMAC-SHA1.
#
#   -DTUNNELD_CRYPTO=auto     (default) openssl where libcrypto is found and
#                             not on Windows, else mbedtls
#   -DTUNNELD_CRYPTO=openssl  OpenSSL 3 libcrypto EVP (an error without it)
#   -DTUNNELD_CRYPTO=mbedtls  mbedTLS only (the portable backend)
#
# The files of a backend end in _<name>.c (common/crypto/aes_<name>.c,
# crypto_default_<name>.c).  td_crypto_sources(out) filters a list of common
# sources down to this build's backend: the mbedTLS backend is always in
# (the tests run their vectors through every backend a build has), the
# OpenSSL one when chosen, and crypto_default_<backend>.c picks the default.
# TD_CRYPTO_OPENSSL_SRC is aes_openssl.c, for targets that want it in a
# mbedtls build (the differential fuzzer), when libcrypto exists.
set(TUNNELD_CRYPTO "auto" CACHE STRING "Symmetric crypto backend: auto, openssl or mbedtls")
set_property(CACHE TUNNELD_CRYPTO PROPERTY STRINGS auto openssl mbedtls)

find_package(OpenSSL 3.0 COMPONENTS Crypto)
set(TD_CRYPTO_BACKEND ${TUNNELD_CRYPTO})
if(TD_CRYPTO_BACKEND STREQUAL "auto")
  if(OpenSSL_FOUND AND NOT WIN32)
    set(TD_CRYPTO_BACKEND openssl)
  else()
    set(TD_CRYPTO_BACKEND mbedtls)
  endif()
endif()
if(TD_CRYPTO_BACKEND STREQUAL "openssl" AND NOT OpenSSL_FOUND)
  message(FATAL_ERROR "TUNNELD_CRYPTO=openssl needs OpenSSL 3 libcrypto (libssl-dev)")
endif()
if(NOT TD_CRYPTO_BACKEND MATCHES "^(openssl|mbedtls)$")
  message(FATAL_ERROR "TUNNELD_CRYPTO must be auto, openssl or mbedtls")
endif()
message(STATUS "crypto backend: ${TD_CRYPTO_BACKEND}")

set(TD_CRYPTO_OPENSSL_SRC "")
if(OpenSSL_FOUND AND NOT WIN32)
  set(TD_CRYPTO_OPENSSL_SRC ${CMAKE_SOURCE_DIR}/common/crypto/aes_openssl.c)
endif()

function(td_crypto_sources out)
  set(res)
  foreach(f ${ARGN})
    get_filename_component(n ${f} NAME_WE)
    if(n MATCHES "_(openssl|mbedtls)$")
      if(n MATCHES "^aes_mbedtls$" OR n MATCHES "_${TD_CRYPTO_BACKEND}$")
        list(APPEND res ${f})
      endif()
    else()
      list(APPEND res ${f})
    endif()
  endforeach()
  set(${out} ${res} PARENT_SCOPE)
endfunction()

# What tunnel_common links for the chosen backend.
add_library(td_crypto_backend INTERFACE)
if(TD_CRYPTO_BACKEND STREQUAL "openssl")
  target_link_libraries(td_crypto_backend INTERFACE OpenSSL::Crypto)
endif()
