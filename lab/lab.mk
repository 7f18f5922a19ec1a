# The reflection-attack lab (docs/lab.md). `make lab` runs every attack
# against the naive server and against echod with its built-in policy, in
# network namespaces it builds (root only); ATTACK=NAME[,NAME] runs some;
# POLICY=FILE runs echod with the built-in policy against echod with FILE
# (NAIVE=1: the naive server too); LAB_SCALE=short runs the smaller floods
# of `make test`; SLIDE=no skips chart.png (chromium takes seconds). Each
# run writes $(LAB_OUT)/<UTC time>-<policy>/ and points $(LAB_OUT)/latest
# at it. The naive server is built here only: it is never part of `all`.

ATTACK		?=
POLICY		?=
NAIVE		?=
LAB_SCALE	?= full
SLIDE		?= yes
LAB_OUT		?= $(BUILD)/lab

.PHONY: lab lab-build

lab-build: $(BUILD)/lab/naive

$(BUILD)/lab/naive: lab/naive.c
	mkdir -p $(BUILD)/lab
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

LAB_FLAGS = $(if $(ATTACK),--attack $(ATTACK)) \
	$(if $(POLICY),--policy $(POLICY)) \
	$(if $(filter 1 yes,$(NAIVE)),--naive-too) \
	$(if $(filter short,$(LAB_SCALE)),--short) \
	$(if $(filter no,$(SLIDE)),--no-slide)

lab: all lab-build
	/usr/bin/python3 lab/lab.py --echod $(BUILD)/echod \
		--naive $(BUILD)/lab/naive --client $(BUILD)/echo-client \
		--out $(LAB_OUT) $(strip $(LAB_FLAGS))
