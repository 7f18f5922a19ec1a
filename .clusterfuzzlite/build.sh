#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite: CC, CXX, CFLAGS, LIB_FUZZING_ENGINE, OUT and
# WORK come from the base image; fuzz/build.sh honours them all.
exec "$SRC/echod/fuzz/build.sh"
