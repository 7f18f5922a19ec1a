#!/bin/bash
# Build the harnesses as OSS-Fuzz's base-builder would (its environment
# variables for one sanitizer, here without the container), then run each
# over its seed corpus zip as `check_build` does: a broken build script,
# a missing seed corpus or dictionary, or a harness that fails on its own
# seeds shows here before it shows on ClusterFuzz.
#
#   fuzz/oss-fuzz/check-build.sh [address|undefined|memory|coverage] [OUT]
#
# The flags are base-builder's (infra/base-images/base-clang and
# base-builder) for clang 14; OUT defaults to build/oss-fuzz/SANITIZER.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SANITIZER=${1:-address}
OUT=${2:-$ROOT/build/oss-fuzz/$SANITIZER}
COMMON="-O1 -fno-omit-frame-pointer -gline-tables-only \
-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
UBSAN_CHECKS=array-bounds,bool,builtin,enum,float-divide-by-zero,function,\
integer-divide-by-zero,null,object-size,return,returns-nonnull-attribute,\
shift,signed-integer-overflow,unsigned-integer-overflow,unreachable,\
vla-bound,vptr
UBSAN_FATAL=${UBSAN_CHECKS/unsigned-integer-overflow,/}

case $SANITIZER in
address)
	SAN="-fsanitize=address -fsanitize-address-use-after-scope" ;;
undefined)
	SAN="-fsanitize=$UBSAN_CHECKS -fno-sanitize-recover=$UBSAN_FATAL" ;;
memory)
	SAN="-fsanitize=memory -fsanitize-memory-track-origins" ;;
coverage)
	SAN="-fprofile-instr-generate -fcoverage-mapping -pthread \
-Wl,--no-as-needed -Wl,-ldl -Wl,-lm -Wno-unused-command-line-argument" ;;
*)
	echo "check-build.sh: unknown sanitizer $SANITIZER" >&2
	exit 64 ;;
esac

export CC=clang CXX=clang++ SANITIZER FUZZING_ENGINE=libfuzzer \
	ARCHITECTURE=x86_64 SRC=$ROOT/.. OUT
export CFLAGS="$COMMON $SAN -fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS"
export LIB_FUZZING_ENGINE=-fsanitize=fuzzer
export WORK
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"

start=$(date +%s.%N)
"$ROOT/fuzz/build.sh"
built=$(date +%s.%N)

fail=0
for f in $(make -s --no-print-directory -C "$ROOT" fuzz-list | cut -d'|' -f1); do
	[ -x "$OUT/$f" ] || { echo "check-build: no $OUT/$f"; fail=1; continue; }
	[ -f "$OUT/${f}_seed_corpus.zip" ] ||
		{ echo "check-build: no ${f}_seed_corpus.zip"; fail=1; }
	if [ -f "$ROOT/fuzz/$f.dict" ] && [ ! -f "$OUT/$f.dict" ]; then
		echo "check-build: no $f.dict"
		fail=1
	fi
	seeds=$WORK/seeds-$f
	mkdir -p "$seeds"
	unzip -q -o "$OUT/${f}_seed_corpus.zip" -d "$seeds"
	if ! (cd "$WORK" && "$OUT/$f" -runs=0 -timeout=25 "$seeds" \
		> "$WORK/$f.log" 2>&1); then
		tail -n 30 "$WORK/$f.log"
		echo "check-build: $f failed on its seed corpus"
		fail=1
	fi
done
done_at=$(date +%s.%N)
printf 'check-build: %s: built in %.1f s, seeds run in %.1f s: %s\n' \
	"$SANITIZER" "$(awk "BEGIN { print $built - $start }")" \
	"$(awk "BEGIN { print $done_at - $built }")" "$([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
