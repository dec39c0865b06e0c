# Embeds db/migrations/NNNN_*.sql into the ferry_db library as the table ferry::db::kMigrations
# (db/migrations.h). The C++ source is regenerated at build time whenever a .sql file changes or
# a new one appears (the glob re-runs CMake on its own).
#
# Included from db/CMakeLists.txt after ferry_db is defined:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/migrations/embed.cmake)
# Safe to include more than once (tools/CMakeLists.txt includes it too, as a fallback).
include_guard(GLOBAL)

set(_ferry_mig_dir ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(_ferry_mig_root ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)
file(GLOB _ferry_mig_sql CONFIGURE_DEPENDS ${_ferry_mig_dir}/[0-9][0-9][0-9][0-9]_*.sql)
list(SORT _ferry_mig_sql)
set(_ferry_mig_out ${CMAKE_BINARY_DIR}/generated/db/migrations_embedded.cpp)

add_custom_command(
  OUTPUT ${_ferry_mig_out}
  COMMAND ${CMAKE_COMMAND} -DOUT=${_ferry_mig_out} -DDIR=${_ferry_mig_dir}
          -P ${_ferry_mig_dir}/generate.cmake
  DEPENDS ${_ferry_mig_sql} ${_ferry_mig_dir}/generate.cmake
  COMMENT "Embedding database migrations"
  VERBATIM)

add_library(ferry_db_migrations STATIC ${_ferry_mig_out})
target_include_directories(ferry_db_migrations PUBLIC ${_ferry_mig_root})
target_compile_features(ferry_db_migrations PUBLIC cxx_std_20)
target_link_libraries(ferry_db PUBLIC ferry_db_migrations)
# Lets code (the tests) know the table is linked in.
target_compile_definitions(ferry_db_migrations INTERFACE FERRY_DB_MIGRATIONS_EMBEDDED=1)
