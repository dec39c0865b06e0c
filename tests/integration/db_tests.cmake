# PostgreSQL credential-store tests: ferryctl end to end against a throwaway PostgreSQL server
# (pg_env.py: initdb + pg_ctl in a temp dir; as the `postgres` user when run as root).
#
# Included from tests/integration/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/db_tests.cmake)
#
#   ctest -L db
#
# The ferryctl target is defined in tools/, which may be added after tests/, so registration is
# deferred to the end of the top-level directory, when every target is known.
if(NOT DEFINED FERRY_IT_PYTHON)
  set(FERRY_IT_PYTHON /usr/bin/python3)
endif()
# Cached: the deferred call below runs in the top-level scope, where a normal variable is not seen.
set(_ferry_db_it_dir ${CMAKE_CURRENT_LIST_DIR} CACHE INTERNAL "")

# integration.db.NAME: SCRIPT with ferry and ferryctl (and any extra arguments), TIMEOUT seconds.
function(_ferry_db_server_test name script timeout)
  add_test(NAME integration.db.${name}
           COMMAND ${FERRY_IT_PYTHON} ${_ferry_db_it_dir}/${script} --bin $<TARGET_FILE:ferry>
                   --ferryctl $<TARGET_FILE:ferryctl> ${ARGN}
           WORKING_DIRECTORY ${_ferry_db_it_dir})
  set_tests_properties(integration.db.${name} PROPERTIES
    LABELS "integration;db"
    TIMEOUT ${timeout}
    RESOURCE_LOCK ferry_integration_server
    SKIP_RETURN_CODE 77
    FAIL_REGULAR_EXPRESSION "(^|\n)FAIL ")
endfunction()

function(_ferry_db_tests_register)
  if(NOT EXISTS ${FERRY_IT_PYTHON})
    message(STATUS "db integration tests: ${FERRY_IT_PYTHON} not found, not registering them")
    return()
  endif()
  if(NOT TARGET ferryctl)
    message(STATUS "db integration tests: no ferryctl target (add_subdirectory(tools)); not registering them")
    return()
  endif()
  file(GLOB _pg_bins /usr/lib/postgresql/*/bin/initdb)
  find_program(FERRY_IT_INITDB initdb)
  if(NOT _pg_bins AND NOT FERRY_IT_INITDB AND NOT DEFINED ENV{FERRY_PG_BINDIR})
    message(STATUS "db integration tests: PostgreSQL server binaries not found (apt-get install postgresql)")
    return()
  endif()
  # With the server too: keys made by `ferryctl apikey add` work at ferry's GET /v1/ice-servers.
  set(_ferry_arg)
  if(TARGET ferry)
    set(_ferry_arg --ferry $<TARGET_FILE:ferry>)
  endif()
  add_test(NAME integration.db.ferryctl
           COMMAND ${FERRY_IT_PYTHON} ${_ferry_db_it_dir}/test_ferryctl.py --ferryctl $<TARGET_FILE:ferryctl> ${_ferry_arg}
           WORKING_DIRECTORY ${_ferry_db_it_dir})
  set_tests_properties(integration.db.ferryctl PROPERTIES
    LABELS "integration;db"
    TIMEOUT 120
    FAIL_REGULAR_EXPRESSION "(^|\n)FAIL ")

  # Tests that run ferry on a throwaway PostgreSQL: one shape, one RESOURCE_LOCK (they bind the
  # same loopback ports), 77 = skipped.
  if(NOT TARGET ferry)
    return()
  endif()
  # A fleet: three ferry on one PostgreSQL (node registry, ferryctl nodes/drain/undrain, SIGKILL
  # shown down, /v1/ice-servers across nodes). Raw Python TURN client only.
  _ferry_db_server_test(fleet_nodes test_fleet_nodes.py 180)
  # The fleet-wide per-user quota: two ferry on one PostgreSQL, 486 on one node for what the
  # other holds, freed again, a users-table quota, a race within one heartbeat, a node killed.
  _ferry_db_server_test(fleet_quota test_fleet_quota.py 180)
  # Usage records and per-user metrics (issue 15): exact sums, a PostgreSQL restart, top-K metrics.
  _ferry_db_server_test(usage test_usage.py 180)
  # USERHASH for PostgreSQL users (migration 0005): a raw client sends USERHASH instead of USERNAME.
  _ferry_db_server_test(userhash test_db_userhash.py 90)
  # ferry itself on a PostgreSQL store: two instances, ferryctl, revocation, outage (needs coturn's tools).
  find_program(FERRY_IT_UCLIENT turnutils_uclient)
  find_program(FERRY_IT_PEER turnutils_peer)
  if(FERRY_IT_UCLIENT AND FERRY_IT_PEER)
    _ferry_db_server_test(server test_db_server.py 240 --uclient ${FERRY_IT_UCLIENT} --peer ${FERRY_IT_PEER})
  endif()
  # RFC 7635 AS-RS keys in PostgreSQL: ferryctl oauthkey, and ferry opening tokens with them.
  if(TARGET ferry)
    add_test(NAME integration.db.oauth
             COMMAND ${FERRY_IT_PYTHON} ${_ferry_db_it_dir}/test_oauth_db.py --bin $<TARGET_FILE:ferry>
                     --ferryctl $<TARGET_FILE:ferryctl>
             WORKING_DIRECTORY ${_ferry_db_it_dir})
    set_tests_properties(integration.db.oauth PROPERTIES
      LABELS "integration;db"
      TIMEOUT 120
      RESOURCE_LOCK ferry_integration_server
      FAIL_REGULAR_EXPRESSION "(^|\n)FAIL ")
  endif()
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _ferry_db_tests_register)
