# Installing raftkv on a machine: `cmake --install build [--prefix P]` puts the binaries, a
# default config.ini, the systemd unit raftkv@.service, its sysusers entry and the docs under the
# prefix; `cpack -G DEB` (make deb) builds a .deb of the same files. docs/operations.md walks
# through deploying, upgrading and backing up with them.
# A machine's layout by default (/usr/bin, /etc/raftkv, /var/lib/raftkv), as the .deb installs it;
# -DCMAKE_INSTALL_PREFIX=/opt/raftkv (say) moves the binaries and config under that prefix.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

# The paths the unit and config name, as installed (absolute: the unit runs outside any prefix).
# With the prefix /usr, GNUInstallDirs puts configuration in /etc and state in /var.
set(RAFTKV_BIN_DIR ${CMAKE_INSTALL_FULL_BINDIR})
set(RAFTKV_CONFIG ${CMAKE_INSTALL_FULL_SYSCONFDIR}/raftkv/config.ini)
# The data directory is the machine's, whatever the prefix: the unit's StateDirectory=raftkv
# creates it for the raftkv user.
set(RAFTKV_DATA_DIR /var/lib/raftkv)
set(RAFTKV_DOC_DIR ${CMAKE_INSTALL_FULL_DOCDIR})
configure_file(${PROJECT_SOURCE_DIR}/packaging/raftkv@.service.in
               ${PROJECT_BINARY_DIR}/packaging/raftkv@.service @ONLY)

# The installed config.ini is the repository's, every key with its default, except where a
# service differs from `make run`: the data under /var/lib/raftkv, and the event log in dump.txt
# only (stdout would repeat it in the journal).
file(READ ${PROJECT_SOURCE_DIR}/config.ini config_text)
string(REGEX REPLACE "\nDATA_DIR = [^\n]*" "\nDATA_DIR = ${RAFTKV_DATA_DIR}" config_text
       "${config_text}")
string(REGEX REPLACE "\nSTDOUT = [^\n]*" "\nSTDOUT = false" config_text "${config_text}")
string(PREPEND config_text
       "; Installed by raftkv. Fill in [cluster] NODES (and [metrics] LISTEN, [tls]) the same on\n"
       "; every machine, then: systemctl enable --now raftkv@<this machine's node id>.\n"
       "; docs/operations.md (in ${RAFTKV_DOC_DIR}) walks through a deployment.\n")
file(WRITE ${PROJECT_BINARY_DIR}/packaging/config.ini "${config_text}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/config.ini)

install(TARGETS raftkv-node raftkv raftkv-inspect RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/make-certs DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME raftkv-make-certs)
install(FILES ${PROJECT_BINARY_DIR}/packaging/config.ini
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/raftkv)
install(FILES ${PROJECT_BINARY_DIR}/packaging/raftkv@.service
        DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/raftkv.sysusers
        DESTINATION lib/sysusers.d RENAME raftkv.conf)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/operations.md
              ${PROJECT_SOURCE_DIR}/docs/api.md ${PROJECT_SOURCE_DIR}/docs/file-formats.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY DESTINATION ${RAFTKV_DATA_DIR})

set(CPACK_PACKAGE_NAME raftkv)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "raftkv developers <raftkv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Replicated, strongly consistent key-value store (Raft with leader leases)")
set(CPACK_GENERATOR DEB)
# The package installs where the unit and config say the files are.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # the gRPC, protobuf, Abseil … libraries, by dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, openssl")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/deb/postinst ${PROJECT_SOURCE_DIR}/packaging/deb/prerm
    ${PROJECT_SOURCE_DIR}/packaging/deb/postrm ${PROJECT_SOURCE_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
