# echod: `make run` builds and serves port 7; `make test` runs every test.
# Variants build into their own directory: build/ (default), build/asan/
# (ASan+UBSan), build/clang/ (the clang warning check).

BUILD	?= build
CC	?= cc
ARGS	?=

WARN	 = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	   -Wmissing-prototypes -Wvla -Wpointer-arith
HARDEN	 = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(CFLAGS) \
	     $(EXTRA_CFLAGS) -Isrc -I$(BUILD)/gen
LDFLAGS	+= -pie -Wl,-z,relro,-z,now $(EXTRA_LDFLAGS)
# libbpf is not linked: xdp.c opens it when the policy asks for the
# prefilter (the unit tests call it directly).
LIBS	 = -lseccomp -lcap

# The XDP prefilter: clang's BPF target, then embedded in echod by bpftool.
BPF_CLANG ?= clang
BPFTOOL	  ?= bpftool
BPF_CFLAGS = -target bpf -O2 -g -Wall -Wextra -Werror \
	     -I/usr/include/$(shell $(BPF_CLANG) -print-multiarch) -Isrc/bpf

# Modules shared by echod and the unit tests: every src/*.c but main's.
CORE	 = $(filter-out echod,$(basename $(notdir $(wildcard src/*.c))))
CORE_OBJ = $(CORE:%=$(BUILD)/obj/%.o) $(BUILD)/obj/default_policy.o
CLIENT_OBJ = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/client/*.c))
BENCH_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/*.c))
# Every tests/unit/test_*.c is a cmocka program linked with the core.
UNIT_TESTS = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
SAN	 = -fsanitize=address,undefined -fno-sanitize-recover=all \
	   -fno-omit-frame-pointer -U_FORTIFY_SOURCE

# Keep intermediate objects (the test objects are made by a chained rule):
# rebuilds stay incremental and make's clean-up never follows the summary.
.SECONDARY:

.PHONY: all deps run test unit lint sanitize clang check-format format clean setcap \
	bench-paths \
	install uninstall deb bench unguarded

all: $(BUILD)/echod $(BUILD)/echo-client $(BUILD)/echo-bench \
	$(UNIT_TESTS:%=$(BUILD)/%)

deps:
	@bash .ci/deps

run: deps all
	./$(BUILD)/echod $(ARGS)

$(BUILD)/obj $(BUILD)/obj/client $(BUILD)/obj/bench $(BUILD)/gen:
	mkdir -p $@

# The compiler and flags of the last build. The file is rewritten only when
# they change, and every object and program depends on it: `make CC=clang`
# or new CFLAGS over an existing $(BUILD) rebuilds everything rather than
# linking objects from two compilers. It is kept up to date even under
# `make -n`, so a dry run lists only what would really be rebuilt.
BUILD_FLAGS = $(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LIBS)
$(BUILD)/flags: FORCE
	+@mkdir -p $(@D) && printf '%s\n' '$(subst ','\'',$(BUILD_FLAGS))' | cmp -s - $@ || \
	  printf '%s\n' '$(subst ','\'',$(BUILD_FLAGS))' > $@

.PHONY: FORCE
FORCE:

# Header dependencies are written by the compiler (-MMD) next to each
# object; -MP keeps a deleted header from breaking the build.
DEPFLAGS = -MMD -MP
-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/client/*.d $(BUILD)/obj/bench/*.d)

# The built-in policy is policy/echod.conf itself, as a C string.
$(BUILD)/gen/default_policy.c: policy/echod.conf | $(BUILD)/gen
	{ echo '/* generated from policy/echod.conf */'; \
	  echo 'extern const char policy_default_text[];'; \
	  echo 'const char policy_default_text[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(BUILD)/obj/default_policy.o: $(BUILD)/gen/default_policy.c $(BUILD)/flags \
		| $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

# The seccomp allowlists are policy/ text files compiled into the binary.
$(BUILD)/gen/seccomp_%.inc: policy/seccomp-%.list src/gen-seccomp.awk | $(BUILD)/gen
	awk -f src/gen-seccomp.awk $< > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/sandbox.o: $(BUILD)/gen/seccomp_worker.inc \
	$(BUILD)/gen/seccomp_supervisor.inc $(BUILD)/gen/seccomp_enosys.inc \
	$(BUILD)/gen/seccomp_metrics.inc $(BUILD)/gen/seccomp_keeper.inc \
	$(BUILD)/gen/seccomp_reader.inc

$(BUILD)/gen/prefilter.bpf.o: src/bpf/prefilter.bpf.c src/bpf/prefilter.h \
	| $(BUILD)/gen
	$(BPF_CLANG) $(BPF_CFLAGS) -c -o $@ $<

$(BUILD)/gen/prefilter.skel.h: $(BUILD)/gen/prefilter.bpf.o
	$(BPFTOOL) gen skeleton $< name prefilter > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/xdp.o $(BUILD)/obj/test_xdp.o: $(BUILD)/gen/prefilter.skel.h

$(BUILD)/obj/%.o: src/%.c $(BUILD)/flags | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: tests/unit/%.c $(BUILD)/flags | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/echod: $(BUILD)/obj/echod.o $(CORE_OBJ) $(BUILD)/flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBS)

# echo-client: src/client/, one file per mode on shared modules, and the
# daemon's value parsers.
$(BUILD)/obj/client/%.o: src/client/%.c $(BUILD)/flags | $(BUILD)/obj/client
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/echo-client: $(CLIENT_OBJ) $(BUILD)/obj/units.o $(BUILD)/flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) -lm

$(BUILD)/test_%: $(BUILD)/obj/test_%.o $(CORE_OBJ) $(BUILD)/flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBS) -lbpf -lcmocka

# echo-bench, the load generator of `make bench`: bench/, one file per
# mode on shared options, sockets and the checked pattern, as echo-client.
$(BUILD)/obj/bench/%.o: bench/%.c $(BUILD)/flags | $(BUILD)/obj/bench
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/echo-bench: $(BENCH_OBJ) $(BUILD)/flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^)

sanitize:
	$(MAKE) BUILD=build/asan CC=clang EXTRA_CFLAGS='$(SAN)' \
		EXTRA_LDFLAGS='$(SAN)' all

clang:
	$(MAKE) BUILD=build/clang CC=clang all

# The bench-only comparison build (src/variant.h): abuse checks and
# seccomp compiled out, its own directory, refuses all but loopback and
# 198.18.0.0/15. Nothing installs or starts it but bench/bench.py.
unguarded:
	$(MAKE) BUILD=build/unguarded EXTRA_CFLAGS=-DECHOD_BENCH_UNGUARDED \
		build/unguarded/echod

# `make bench`: echod against itself unguarded and the Go tutorial server
# (built if golang-go is installed), every echoed byte verified. Needs
# root for the under-attack row (network namespaces); BENCH_ARGS=--quick
# for a short run. Each run also writes its results, with the command and
# the commit, to a file of its own under bench/results/. See
# docs/performance.md.
BENCH_ARGS ?=
bench: all unguarded
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)

# The TCP echo paths by data in flight (docs/performance.md says why).
bench-paths: all
	/usr/bin/python3 bench/paths.py $(PATHS_ARGS)

unit: all
	@for t in $(UNIT_TESTS); do ./$(BUILD)/$$t || exit 1; done

# The lint tests alone (tests/lint: the tree, documents, man pages and
# build read as text); make test runs them too.
lint: all
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/lint

# The whole suite: both compilers warning-free, unit tests plain and under
# ASan+UBSan, then the integration tests on real sockets.
test: deps check-format all clang sanitize unguarded fuzz-replay-build \
	fuzz-coverage-build \
	lab-build
	/usr/bin/python3 tests/run.py

FORMAT_FILES = $(wildcard src/*.[ch] src/client/*.[ch] src/bpf/*.[ch] \
	       bench/*.[ch] tests/unit/*.[ch] fuzz/*.[ch] lab/*.c)

check-format:
	clang-format --dry-run --Werror $(FORMAT_FILES)

format:
	clang-format -i $(FORMAT_FILES)

clean:
	rm -rf build

# Fuzzing: harnesses, corpora and their targets (make fuzz, fuzz-run,
# fuzz-coverage, fuzz-replay) live in fuzz/.
-include fuzz/fuzz.mk

# The reflection-attack lab: make lab [ATTACK=NAME] [POLICY=FILE].
-include lab/lab.mk

# Serve port 7 as an ordinary user: the binary carries the right to bind
# (and CAP_SETPCAP, so it can also empty its bounding set before serving).
# Only root and SETCAP_GROUP may run it (mode 0750): the capability is for
# the operators of echod, not every local user. Without root, echod binds
# no port below 1024 but 7, so even they get no general port binder.
SETCAP_GROUP ?= echod
setcap: $(BUILD)/echod
	@getent group $(SETCAP_GROUP) >/dev/null || { echo "make setcap: \
	group '$(SETCAP_GROUP)' does not exist: groupadd -r $(SETCAP_GROUP) \
	(or SETCAP_GROUP=...)" >&2; exit 1; }
	chown root:$(SETCAP_GROUP) $(BUILD)/echod
	chmod 0750 $(BUILD)/echod
	setcap cap_net_bind_service,cap_setpcap=ep $(BUILD)/echod
	getcap $(BUILD)/echod

# Install: binaries, man pages, the systemd units, the policy and the docs.
# PREFIX and DESTDIR as usual; the policy goes to /etc unless SYSCONFDIR
# says otherwise, and names the chroot the unit creates (/var is read-only
# under the unit's ProtectSystem=strict).
PREFIX		?= /usr/local
SYSCONFDIR	?= /etc
SBINDIR		 = $(PREFIX)/sbin
BINDIR		 = $(PREFIX)/bin
MANDIR		 = $(PREFIX)/share/man
DOCDIR		 = $(PREFIX)/share/doc/echod
UNITDIR		?= $(PREFIX)/lib/systemd/system
UNIT_CHROOT	 = /run/echod/empty
INSTALLED = $(SBINDIR)/echod $(BINDIR)/echo-client \
	    $(MANDIR)/man8/echod.8 $(MANDIR)/man5/echod.conf.5 \
	    $(MANDIR)/man1/echo-client.1 \
	    $(UNITDIR)/echod.service $(UNITDIR)/echod.socket \
	    $(DOCDIR)/README.md $(DOCDIR)/SECURITY.md \
	    $(DOCS:%=$(DOCDIR)/%) \
	    $(DIST_EXAMPLES:dist/%=$(DOCDIR)/examples/%)
# Installed as they stand in the tree, so README's links to docs/ hold.
DOCS = $(sort $(wildcard docs/*.md))
DIST_EXAMPLES = dist/keepalived/keepalived.conf dist/kubernetes/echod.yaml
INSTALL_DIRS = $(SYSCONFDIR)/echod $(DOCDIR)/examples/keepalived \
	       $(DOCDIR)/examples/kubernetes $(DOCDIR)/examples $(DOCDIR)/docs \
	       $(DOCDIR)
SUBST_PATHS = sed -e 's|/usr/local/sbin/echod|$(SBINDIR)/echod|g' \
		  -e 's|/usr/local/share/doc/echod|$(DOCDIR)|g'

$(BUILD)/echod.conf: policy/echod.conf | $(BUILD)/obj
	{ echo '# $(SYSCONFDIR)/echod/echod.conf: read by echod.service. The built-in'; \
	  echo '# policy, but for the chroot, which echod.service creates. See echod.conf(5).'; \
	  echo '#'; \
	  sed -e 's|^chroot .*|chroot $(UNIT_CHROOT)|' $<; } > $@

install: $(BUILD)/echod $(BUILD)/echo-client $(BUILD)/echod.conf
	@! grep -q unguarded_build $(BUILD)/echod || { echo "install: \
	$(BUILD)/echod is the bench-only unguarded build; refusing" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(SYSCONFDIR)/echod $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples/keepalived \
		$(DESTDIR)$(DOCDIR)/examples/kubernetes $(DESTDIR)$(DOCDIR)/docs
	install -m 0755 $(BUILD)/echod $(DESTDIR)$(SBINDIR)/echod
	install -m 0755 $(BUILD)/echo-client $(DESTDIR)$(BINDIR)/echo-client
	@$(MAKE) -s --no-print-directory install-policy
	install -m 0644 man/echod.8 $(DESTDIR)$(MANDIR)/man8/echod.8
	install -m 0644 man/echod.conf.5 $(DESTDIR)$(MANDIR)/man5/echod.conf.5
	install -m 0644 man/echo-client.1 $(DESTDIR)$(MANDIR)/man1/echo-client.1
	for u in echod.service echod.socket; do \
		$(SUBST_PATHS) dist/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 README.md SECURITY.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/docs/
	for f in $(DIST_EXAMPLES); do \
		install -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/$${f#dist/} || exit 1; \
	done

uninstall: $(BUILD)/echod.conf
	rm -f $(INSTALLED:%=$(DESTDIR)%)
	@$(MAKE) -s --no-print-directory uninstall-policy
	-rmdir $(INSTALL_DIRS:%=$(DESTDIR)%) 2>/dev/null

# The policy is the operator's once installed: an existing one is never
# overwritten (the shipped one goes beside it, as echod.conf.dist, as
# dpkg does with a conffile) and an edited one is never removed.
POLICY_DEST = $(DESTDIR)$(SYSCONFDIR)/echod/echod.conf
.PHONY: install-policy uninstall-policy
install-policy: $(BUILD)/echod.conf
	@if [ ! -e $(POLICY_DEST) ]; then \
		install -m 0644 $(BUILD)/echod.conf $(POLICY_DEST); \
		echo "installed $(POLICY_DEST)"; \
	elif cmp -s $(BUILD)/echod.conf $(POLICY_DEST); then \
		rm -f $(POLICY_DEST).dist; \
	else \
		install -m 0644 $(BUILD)/echod.conf $(POLICY_DEST).dist; \
		echo "make install: kept your $(POLICY_DEST);" \
		     "the shipped policy is $(POLICY_DEST).dist beside it" >&2; \
	fi

uninstall-policy: $(BUILD)/echod.conf
	@rm -f $(POLICY_DEST).dist
	@if [ -e $(POLICY_DEST) ] && ! cmp -s $(BUILD)/echod.conf $(POLICY_DEST); then \
		echo "make uninstall: kept $(POLICY_DEST): it differs from" \
		     "the shipped policy (remove it by hand if it is no" \
		     "longer wanted)" >&2; \
	else \
		rm -f $(POLICY_DEST); \
	fi

# A Debian package, built from a copy of the tree in $(BUILD)/deb/ so that
# dpkg-buildpackage writes nothing outside it (and with none of this make's
# variables: the copy builds into its own build/).
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/echod
	tar -c --exclude=./build --exclude=./.git --exclude='./fuzz/findings' \
		. | tar -x -C $(BUILD)/deb/echod
	cd $(BUILD)/deb/echod && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD \
		dpkg-buildpackage -b -us -uc
	ls -l $(BUILD)/deb/*.deb
