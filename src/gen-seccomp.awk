# Turn a policy/seccomp-*.list file into C initialisers for sandbox.c:
#   mmap arg2&PROT_EXEC==0 -- reason
# becomes
#   {"mmap", 1, {{2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0}}},
# Malformed lines stop the build, so the text cannot drift from the binary.
{
	sub(/--.*/, "")
	sub(/#.*/, "")
	if (NF == 0)
		next
	if ($1 !~ /^[a-z0-9_]+$/) {
		printf "%s:%d: bad syscall name '%s'\n", FILENAME, FNR, $1 > "/dev/stderr"
		exit 1
	}
	cmps = ""
	for (i = 2; i <= NF; i++) {
		if (match($i, /^arg[0-5]&[A-Za-z0-9_|]+==[A-Za-z0-9_|]+$/)) {
			split($i, a, /&|==/)
			cmp = sprintf("{%s, SCMP_CMP_MASKED_EQ, %s, %s}", substr(a[1], 4), a[2], a[3])
		} else if (match($i, /^arg[0-5]==[A-Za-z0-9_|]+$/)) {
			split($i, a, /==/)
			cmp = sprintf("{%s, SCMP_CMP_EQ, %s, 0}", substr(a[1], 4), a[2])
		} else {
			printf "%s:%d: bad constraint '%s'\n", FILENAME, FNR, $i > "/dev/stderr"
			exit 1
		}
		cmps = cmps (cmps == "" ? "" : ", ") cmp
	}
	printf "\t{\"%s\", %d, {%s}},\n", $1, NF - 1, cmps == "" ? "{0}" : cmps
}
