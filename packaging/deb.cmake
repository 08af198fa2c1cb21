# The Debian package: install rules for everything beyond the two binaries,
# and CPack's DEB settings.  Included at the end of the top CMakeLists.txt
# (after the targets exist).  Build the package in a release build tree:
#
#     cmake --build build/rel && (cd build/rel && cpack -G DEB)
#
# packaging/check-deb.sh builds it and checks it (lintian, systemd-analyze,
# contents, modes); scripts/test.sh runs that.

set(TUNNELD_DEB_MAINTAINER "tunneld maintainers <maintainers@users.noreply.r-seed-35dfe44f.example>"
    CACHE STRING "Maintainer: field of the .deb")
set(TUNNELD_HOMEPAGE "" CACHE STRING "Homepage: field of the .deb (left out when empty)")
set(TUNNELD_SYSTEMD_UNITDIR "/lib/systemd/system" CACHE PATH
    "Where the package installs tunneld.service (Debian 12: /lib/systemd/system)")
# Debian's libwebsockets loads its libuv support at run time
# (dlopen of libwebsockets-evlib_uv.so, LWS_WITH_EVLIB_PLUGINS), which
# dpkg-shlibdeps cannot see, so the package names it by hand.  AUTO: when
# the lws that tunneld links is a shared library built with evlib plugins.
# A static lws with libuv built in (LWS_WITH_EVLIB_PLUGINS off) needs
# nothing, and AUTO then leaves the dependency out by itself.
set(TUNNELD_DEB_LWS_EVLIB_UV AUTO CACHE STRING
    "Depends: libwebsockets-evlib-uv (AUTO, ON or OFF)")
set_property(CACHE TUNNELD_DEB_LWS_EVLIB_UV PROPERTY STRINGS AUTO ON OFF)

# --- does the package need the dlopen()ed lws libuv plugin? --------------------
function(td_lws_needs_evlib_plugin out)
  set(needs OFF)
  get_target_property(libs tunneld LINK_LIBRARIES)
  foreach(lib IN LISTS libs)
    if(NOT lib MATCHES "websockets" OR NOT TARGET ${lib})
      continue()
    endif()
    get_target_property(type ${lib} TYPE)
    if(NOT type STREQUAL "SHARED_LIBRARY")
      continue()
    endif()
    get_target_property(incs ${lib} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT incs)
      set(incs "")
    endif()
    find_file(TD_LWS_CONFIG_H lws_config.h HINTS ${incs})
    if(TD_LWS_CONFIG_H)
      file(STRINGS ${TD_LWS_CONFIG_H} plug REGEX "^#define[ \t]+LWS_WITH_EVLIB_PLUGINS")
      if(plug)
        set(needs ON)
      endif()
    endif()
  endforeach()
  set(${out} ${needs} PARENT_SCOPE)
endfunction()

if(TUNNELD_DEB_LWS_EVLIB_UV STREQUAL "AUTO")
  td_lws_needs_evlib_plugin(TD_DEB_EVLIB_UV)
else()
  set(TD_DEB_EVLIB_UV ${TUNNELD_DEB_LWS_EVLIB_UV})
endif()

# --- files beyond bin/tunneld and bin/tunnelctl ----------------------------------
set(TD_PKG ${CMAKE_SOURCE_DIR}/packaging)
set(TD_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/tunneld)

install(FILES ${TD_PKG}/systemd/tunneld.service DESTINATION ${TUNNELD_SYSTEMD_UNITDIR})
# 0644 in the package (Debian's default for /etc, and the default file holds
# no secret); the postinst makes it 0640 root:tunneld with dpkg-statoverride,
# before passwords or keys are added to it, and dpkg keeps that on upgrades.
install(FILES ${TD_PKG}/config/tunneld.yaml DESTINATION /etc/tunneld)
install(FILES ${TD_PKG}/debian/copyright ${CMAKE_SOURCE_DIR}/docs/config.md
              ${CMAKE_SOURCE_DIR}/docs/install.md
        DESTINATION ${TD_DOC_DIR})

# Man pages (docs/man/*.8, whoever wrote them) and the changelog, compressed
# as Debian wants (gzip -9n: no name, no time stamp).  The globs are checked
# again at build time, so a page merged in later is packaged without a
# reconfigure.
file(GLOB TD_MAN_PAGES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.8)
set(TD_GZ_DIR ${CMAKE_BINARY_DIR}/packaging)
set(TD_GZ_FILES)
foreach(src ${TD_MAN_PAGES} ${TD_PKG}/debian/changelog)
  get_filename_component(n ${src} NAME)
  set(gz ${TD_GZ_DIR}/${n}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${TD_GZ_DIR}
    COMMAND sh -c "gzip -9n -c \"$1\" > \"$2\"" sh ${src} ${gz}
    DEPENDS ${src} VERBATIM)
  list(APPEND TD_GZ_FILES ${gz})
  if(src MATCHES "\\.8$")
    install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  endif()
endforeach()
add_custom_target(package-docs ALL DEPENDS ${TD_GZ_FILES})
install(FILES ${TD_GZ_DIR}/changelog.gz DESTINATION ${TD_DOC_DIR})

# Bash completion for tunnelctl, when it is in the tree.
file(GLOB TD_COMPLETION CONFIGURE_DEPENDS ${TD_PKG}/completion/tunnelctl.bash)
if(TD_COMPLETION)
  install(FILES ${TD_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          RENAME tunnelctl)
endif()

# --- CPack: DEB ----------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tunneld)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT ${TUNNELD_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "encrypted tunnelling proxy daemon (SOCKS5, HTTP, wstan, jProxy)")
# The extended description, one string per line (at most 80 columns; CPack
# indents each line and writes an empty one as " .").
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "tunneld is a proxy daemon on libuv.  Its front-ends are SOCKS5 (with UDP"
  "ASSOCIATE and username/password), an HTTP proxy (CONNECT and absolute-URI"
  "requests), both on one port, and static TCP forwards.  Each listener"
  "connects directly or through an encrypted tunnel: wstan over WebSocket"
  "(ws:// or wss://) or jProxy v3, as client and as server, wire-compatible"
  "with the stock peers."
  ""
  "The package runs tunneld as a hardened systemd service under its own"
  "system user, with a default configuration that serves SOCKS5 and HTTP on"
  "127.0.0.1 only.  tunnelctl checks configurations and makes jProxy keys.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${TUNNELD_DEB_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
if(TUNNELD_HOMEPAGE)
  set(CPACK_DEBIAN_PACKAGE_HOMEPAGE ${TUNNELD_HOMEPAGE})
endif()
# Depends: what dpkg-shlibdeps finds in the binaries, plus what it cannot.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(TD_DEB_DEPENDS "adduser")
if(TD_DEB_EVLIB_UV)
  string(APPEND TD_DEB_DEPENDS ", libwebsockets-evlib-uv")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS ${TD_DEB_DEPENDS})
message(STATUS "tunneld .deb: Depends: ${TD_DEB_DEPENDS} + shlibdeps "
               "(TUNNELD_DEB_LWS_EVLIB_UV=${TUNNELD_DEB_LWS_EVLIB_UV})")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${TD_PKG}/debian/conffiles ${TD_PKG}/debian/postinst
    ${TD_PKG}/debian/prerm ${TD_PKG}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
