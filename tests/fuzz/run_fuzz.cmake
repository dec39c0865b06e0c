# Runs one libFuzzer binary for a bounded time over a fresh corpus directory.
#   cmake -DFUZZER=path -DTARGET=name -DSECONDS=n -DSEED_DIRS="dir1|dir2" -DWORK_DIR=dir -P run_fuzz.cmake
# Optional: -DEXTRA_ARGS="arg1|arg2" (more libFuzzer flags).
foreach(v FUZZER TARGET SECONDS WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: -D${v}=... is required")
  endif()
endforeach()

set(corpus "${WORK_DIR}/corpus/${TARGET}")
set(artifacts "${WORK_DIR}/artifacts/${TARGET}")
file(REMOVE_RECURSE "${corpus}" "${artifacts}")
file(MAKE_DIRECTORY "${corpus}" "${artifacts}")

string(REPLACE "|" ";" seed_dirs "${SEED_DIRS}")
set(nseeds 0)
foreach(dir IN LISTS seed_dirs)
  if(IS_DIRECTORY "${dir}")
    file(GLOB seeds LIST_DIRECTORIES false "${dir}/*")
    list(FILTER seeds EXCLUDE REGEX "(\\.json|\\.md|/\\.[^/]*)$")
    foreach(seed IN LISTS seeds)
      file(COPY "${seed}" DESTINATION "${corpus}")
      math(EXPR nseeds "${nseeds} + 1")
    endforeach()
  endif()
endforeach()
message(STATUS "${TARGET}: ${nseeds} seed(s), ${SECONDS}s, corpus ${corpus}")

string(REPLACE "|" ";" extra "${EXTRA_ARGS}")
execute_process(
  COMMAND "${FUZZER}"
    -max_total_time=${SECONDS} -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix=${artifacts}/ ${extra} "${corpus}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB crashes "${artifacts}/*")
  message(FATAL_ERROR "${TARGET}: fuzzer exited with '${rc}'. Reproducer(s): ${crashes}\n"
                      "Re-run one with: ${FUZZER} <file>")
endif()
