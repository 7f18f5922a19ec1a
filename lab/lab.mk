# The reflection-attack lab (lab/README in the top README's "Lab" section).
# `make lab` runs every attack against the naive server and against echod
# in network namespaces it builds (root only); ATTACK=NAME runs one,
# POLICY=FILE gives echod a policy file. Results go to $(BUILD)/lab/.
# The naive server is built here only: it is never part of `all`.

ATTACK	?=
POLICY	?=
LAB_OUT	?= $(BUILD)/lab

.PHONY: lab lab-build

lab-build: $(BUILD)/lab/naive

$(BUILD)/lab/naive: lab/naive.c
	mkdir -p $(BUILD)/lab
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

lab: all lab-build
	/usr/bin/python3 lab/lab.py --echod $(BUILD)/echod \
		--naive $(BUILD)/lab/naive --client $(BUILD)/echo-client \
		--out $(LAB_OUT) $(if $(ATTACK),--attack $(ATTACK)) \
		$(if $(POLICY),--policy $(POLICY))
