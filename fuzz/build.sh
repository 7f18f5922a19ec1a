#!/bin/bash
# OSS-Fuzz style build of echod's fuzz harnesses.
#
# Honours $CC, $CXX (link), $CFLAGS (sanitizer and coverage flags, e.g.
# "-fsanitize=address -fsanitize=fuzzer-no-link"), $LIB_FUZZING_ENGINE
# (e.g. -fsanitize=fuzzer, or an AFL++/honggfuzz driver .a) and $OUT.
# $WORK (scratch, default: a temporary directory) holds the objects.
# Writes $OUT/NAME for every harness, $OUT/NAME_seed_corpus.zip when zip
# is available, and $OUT/NAME.dict where the harness has a dictionary.
#
# Local use: CC=clang CFLAGS="-fsanitize=address,fuzzer-no-link" \
#            LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out fuzz/build.sh
set -euo pipefail

SRC_ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-clang}
CXX=${CXX:-clang++}
CFLAGS=${CFLAGS:--fsanitize=address,undefined,fuzzer-no-link}
LIB_FUZZING_ENGINE=${LIB_FUZZING_ENGINE:--fsanitize=fuzzer}
OUT=${OUT:?set OUT to the output directory}
mkdir -p "$OUT"
if [ -n "${WORK:-}" ]; then
	OBJ=$WORK/echod-fuzz-obj
	mkdir -p "$OBJ"
else
	OBJ=$(mktemp -d)
	trap 'rm -rf "$OBJ"' EXIT
fi

cd "$SRC_ROOT"

# The harnesses, the modules each links and any extra link flags, as
# fuzz/fuzz.mk lists them.
declare -A MODS=() LINK=()
FUZZERS=""
while IFS='|' read -r f mods link; do
	MODS[$f]=$mods
	LINK[$f]=$link
	FUZZERS="$FUZZERS $f"
done < <(make -s --no-print-directory fuzz-list)

# The built-in policy as a C string, exactly as the Makefile makes it.
mkdir -p "$OBJ/gen"
{
	echo '/* generated from policy/echod.conf */'
	echo 'extern const char policy_default_text[];'
	echo 'const char policy_default_text[] ='
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/\\n"/' \
		policy/echod.conf
	echo ';'
} > "$OBJ/gen/default_policy.c"

BASE="-std=c11 -D_GNU_SOURCE -U_FORTIFY_SOURCE -g -Isrc -I$OBJ/gen"

declare -A BUILT=()
compile() { # OUTPUT SOURCE: once per run (objects in $WORK may be stale)
	if [ -z "${BUILT[$1]:-}" ]; then
		$CC $BASE $CFLAGS -c -o "$1" "$2"
		BUILT[$1]=1
	fi
}

for f in $FUZZERS; do
	objs=("$OBJ/$f.o")
	compile "$OBJ/$f.o" "fuzz/$f.c"
	for m in ${MODS[$f]}; do
		if [ "$m" = default_policy ]; then
			compile "$OBJ/$m.o" "$OBJ/gen/default_policy.c"
		else
			compile "$OBJ/$m.o" "src/$m.c"
		fi
		objs+=("$OBJ/$m.o")
	done
	# libFuzzer and most engines are C++: link with the C++ driver.
	$CXX $CFLAGS ${LINK[$f]} -o "$OUT/$f" "${objs[@]}" $LIB_FUZZING_ENGINE

	if [ -f "fuzz/$f.dict" ]; then
		cp "fuzz/$f.dict" "$OUT/$f.dict"
	fi
	if [ -d "fuzz/corpus/$f" ] && command -v zip > /dev/null; then
		rm -f "$OUT/${f}_seed_corpus.zip"
		zip -q -j "$OUT/${f}_seed_corpus.zip" "fuzz/corpus/$f"/*
	fi
done
echo "built: $FUZZERS -> $OUT"
