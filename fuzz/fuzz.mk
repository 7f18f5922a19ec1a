# Fuzzing, included by the top-level Makefile (which defines BUILD, WARN,
# and the rules for $(BUILD)/gen/default_policy.c).
#
#   make fuzz                      libFuzzer+ASan+UBSan harnesses (clang)
#   make fuzz-run FUZZ_SECONDS=N   run each for N s on a copy of its corpus
#   make fuzz-replay [CC=gcc]      corpus + kept crashes, no libFuzzer
#   make fuzz-coverage             lines and branches per file and function
#                                  over every harness that links the file
#   make fuzz-campaign FUZZ_SECONDS=N [FUZZ_JOBS=J]
#                                  every harness, then merged back into
#                                  fuzz/corpus/ (-merge=1) with a summary
#
# The harnesses link the real sources from src/, recompiled with the fuzz
# flags; each one links only the modules it needs.

FUZZERS = fuzz_policy fuzz_addr fuzz_units fuzz_cli fuzz_sockact fuzz_tcp \
	  fuzz_guard fuzz_ratelimit fuzz_logline fuzz_http \
	  fuzz_tcp_admit

# Modules of src/ each harness links (default_policy: $(BUILD)/gen).
FUZZ_MODS_fuzz_policy	 = policy units addr acl errmsg log logline counters default_policy
FUZZ_MODS_fuzz_addr	 = addr units
FUZZ_MODS_fuzz_units	 = units
FUZZ_MODS_fuzz_cli	 = cli policy units addr acl errmsg log logline counters \
			   default_policy
FUZZ_MODS_fuzz_sockact	 = sockact units addr errmsg
FUZZ_MODS_fuzz_logline	 = logline
FUZZ_MODS_fuzz_http	 = http
FUZZ_MODS_fuzz_guard	 = guard ratelimit siphash acl addr units policy \
			   errmsg log logline counters default_policy
FUZZ_MODS_fuzz_ratelimit = ratelimit siphash addr units
FUZZ_MODS_fuzz_tcp	 = tcp pipepool slab guard ratelimit siphash acl addr units \
			   policy errmsg log logline counters listener facts \
			   default_policy
FUZZ_MODS_fuzz_tcp_admit = guard ratelimit siphash acl addr units policy \
			   errmsg log logline counters default_policy

# Extra link flags: fuzz_tcp's fake socket layer takes tcp.c's calls.
FUZZ_LINK_fuzz_tcp = $(foreach f,accept4 recv send shutdown close splice pipe2 \
		       fcntl read,-Wl,--wrap=$(f))

FUZZ_CC		?= clang
FUZZ_SECONDS	?= 10
FUZZ_JOBS	?= 1
FUZZ_DIR	?= build/fuzz
FUZZ_REPLAY_DIR	?= build/fuzz-replay
FUZZ_COV_DIR	?= build/fuzz-coverage
LLVM_PROFDATA	?= $(shell command -v llvm-profdata-14 || \
		     command -v llvm-profdata || echo llvm-profdata)
LLVM_COV	?= $(shell command -v llvm-cov-14 || command -v llvm-cov || \
		     echo llvm-cov)

# No FORTIFY (it hides overflows from ASan), no -Werror surprises from
# optimisation: warnings as the project's, code at -O1 with debug info.
FUZZ_BASE = -std=c11 -D_GNU_SOURCE $(WARN) -U_FORTIFY_SOURCE -g -O1 \
	    -fno-omit-frame-pointer -Isrc -I$(BUILD)/gen
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS	   = $(FUZZ_BASE) -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_LDFLAGS	   = -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_REPLAY_CFLAGS = $(FUZZ_BASE) $(FUZZ_SAN)
FUZZ_COV_CFLAGS	   = $(filter-out -O1,$(FUZZ_BASE)) -O0 \
		     -fprofile-instr-generate -fcoverage-mapping

FUZZ_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
	   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: fuzz fuzz-run fuzz-replay fuzz-coverage fuzz-coverage-build \
	fuzz-campaign fuzz-clean

fuzz: $(FUZZERS:%=$(FUZZ_DIR)/%)

# One object tree per flavour: OBJDIR, COMPILER, FLAGS. Header
# dependencies come from the compiler (-MMD -MP). OBJDIR/flags
# holds the compiler and flags of the last build, rewritten (and so
# everything rebuilt) when they change: `make fuzz-replay CC=gcc` after a
# clang run must not link clang objects.
define fuzz_objects
$(1)/flags: FORCE
	@mkdir -p $(1)/obj
	@echo '$(2) $(3)' | cmp -s - $$@ || echo '$(2) $(3)' > $$@
$(1)/obj/%.o: src/%.c $(1)/flags | $(1)/obj
	$(2) $(3) $(DEPFLAGS) -c -o $$@ $$<
$(1)/obj/%.o: fuzz/%.c $(1)/flags | $(1)/obj
	$(2) $(3) $(DEPFLAGS) -c -o $$@ $$<
$(1)/obj/default_policy.o: $(BUILD)/gen/default_policy.c $(1)/flags | $(1)/obj
	$(2) $(3) -Wno-missing-prototypes -c -o $$@ $$<
$(1)/obj:
	mkdir -p $$@
-include $(wildcard $(1)/obj/*.d)
endef
$(eval $(call fuzz_objects,$(FUZZ_DIR),$(FUZZ_CC),$(FUZZ_CFLAGS)))
$(eval $(call fuzz_objects,$(FUZZ_REPLAY_DIR),$(CC),$(FUZZ_REPLAY_CFLAGS)))
$(eval $(call fuzz_objects,$(FUZZ_COV_DIR),$(FUZZ_CC),$(FUZZ_COV_CFLAGS)))

# Link rules: NAME, for libFuzzer, replay (sanitizers) and coverage.
define fuzz_links
$(FUZZ_DIR)/$(1): $(FUZZ_DIR)/obj/$(1).o \
		  $(FUZZ_MODS_$(1):%=$(FUZZ_DIR)/obj/%.o)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) $(FUZZ_LINK_$(1)) -o $$@ $$(filter %.o,$$^)
$(FUZZ_REPLAY_DIR)/$(1): $(FUZZ_REPLAY_DIR)/obj/$(1).o \
		  $(FUZZ_REPLAY_DIR)/obj/replay_main.o \
		  $(FUZZ_MODS_$(1):%=$(FUZZ_REPLAY_DIR)/obj/%.o)
	$(CC) $(FUZZ_SAN) $(FUZZ_LINK_$(1)) -o $$@ $$(filter %.o,$$^)
$(FUZZ_COV_DIR)/$(1): $(FUZZ_COV_DIR)/obj/$(1).o \
		  $(FUZZ_COV_DIR)/obj/replay_main.o \
		  $(FUZZ_MODS_$(1):%=$(FUZZ_COV_DIR)/obj/%.o)
	$(FUZZ_CC) -fprofile-instr-generate $(FUZZ_LINK_$(1)) -o $$@ \
		$$(filter %.o,$$^)
endef
$(foreach f,$(FUZZERS),$(eval $(call fuzz_links,$(f))))

# Each harness for FUZZ_SECONDS on a scratch copy of its corpus; new
# reproducers land in fuzz/findings/NAME/ (gitignored). All harnesses run;
# the target fails if any of them found something.
fuzz-run: fuzz
	@fail=""; for f in $(FUZZERS); do \
	  rm -rf $(FUZZ_DIR)/work/$$f && mkdir -p $(FUZZ_DIR)/work/$$f \
	    fuzz/findings/$$f || exit 1; \
	  if [ -d fuzz/corpus/$$f ]; then \
	    cp fuzz/corpus/$$f/* $(FUZZ_DIR)/work/$$f/ 2>/dev/null; fi; \
	  dict=; [ -f fuzz/$$f.dict ] && dict=-dict=fuzz/$$f.dict; \
	  echo "== $$f: $(FUZZ_SECONDS)s"; \
	  $(FUZZ_ENV) ./$(FUZZ_DIR)/$$f $(FUZZ_DIR)/work/$$f $$dict \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=fuzz/findings/$$f/ \
	    > $(FUZZ_DIR)/work/$$f.log 2>&1; rc=$$?; \
	  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' \
	    $(FUZZ_DIR)/work/$$f.log; \
	  if [ $$rc -ne 0 ]; then \
	    tail -n 40 $(FUZZ_DIR)/work/$$f.log; \
	    echo "== $$f: FAILED (exit $$rc); see fuzz/findings/$$f/ and $(FUZZ_DIR)/work/$$f.log"; \
	    fail="$$fail $$f"; fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz-run: findings in:$$fail"; exit 1; fi; \
	echo "fuzz-run: no findings"

# Every corpus and kept reproducer, under ASan+UBSan, with $(CC).
fuzz-replay: $(FUZZERS:%=$(FUZZ_REPLAY_DIR)/%)
	@fail=""; for f in $(FUZZERS); do \
	  dirs=; for d in fuzz/corpus/$$f fuzz/crashes/$$f; do \
	    [ -d $$d ] && dirs="$$dirs $$d"; done; \
	  [ -n "$$dirs" ] || continue; \
	  $(FUZZ_ENV) ./$(FUZZ_REPLAY_DIR)/$$f $$dirs || fail="$$fail $$f"; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz-replay: failed:$$fail"; exit 1; fi

# Coverage of src/ by the committed corpora, per file over every harness
# that links it (fuzz/coverage.py): lines and branches per file and per
# function, the functions under 90%, each file against its floor in
# fuzz/coverage-floors (make test's gate: tests/integration/
# test_fuzz_corpus.py). Full report in $(FUZZ_COV_DIR)/report.txt.
fuzz-coverage: fuzz-coverage-build
	/usr/bin/python3 fuzz/coverage.py --out $(FUZZ_COV_DIR)

fuzz-coverage-build: $(FUZZERS:%=$(FUZZ_COV_DIR)/%)

# A campaign: each harness FUZZ_SECONDS with FUZZ_JOBS processes, what it
# learned merged into fuzz/corpus/NAME/, a summary in
# $(FUZZ_DIR)/campaign/summary.md (fuzz/campaign.py; see docs/fuzzing.md).
fuzz-campaign: fuzz fuzz-coverage-build
	/usr/bin/python3 fuzz/campaign.py --seconds $(FUZZ_SECONDS) \
		--jobs $(FUZZ_JOBS)

fuzz-clean:
	rm -rf $(FUZZ_DIR) $(FUZZ_REPLAY_DIR) $(FUZZ_COV_DIR) build/oss-fuzz

# The replay programs only, for `make test` (tests/run.py runs them).
.PHONY: fuzz-replay-build
fuzz-replay-build: $(FUZZERS:%=$(FUZZ_REPLAY_DIR)/%)

# For fuzz/build.sh (OSS-Fuzz): NAME|MODULES|LINK FLAGS, one harness a line.
.PHONY: fuzz-list
fuzz-list:
	@$(foreach f,$(FUZZERS),echo '$(f)|$(FUZZ_MODS_$(f))|$(FUZZ_LINK_$(f))';)
