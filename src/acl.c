/*
 * acl: allow and deny lists of CIDR prefixes, longest prefix wins.
 *
 * Rules live in a fixed array inside struct acl; acl_finish sorts them by
 * prefix length, longest first, so that acl_allows can stop at the first
 * rule that contains the address. Two different prefixes of one length
 * never overlap, and the same prefix cannot carry both verdicts (acl_add
 * refuses it), so the first match is also the only longest match and the
 * order among rules of equal length does not matter.
 */
#include "acl.h"

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>

static bool
same_prefix(const struct cidr *a, const struct cidr *b)
{
	return a->prefix == b->prefix && ipaddr_equal(&a->addr, &b->addr);
}

int
acl_add(struct acl *a, const struct cidr *net, bool allow)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (!same_prefix(&a->rules[i].net, net))
			continue;
		/* Listed twice with one verdict is harmless; keep one. */
		if (a->rules[i].allow == allow)
			return 0;
		return -1;
	}
	if (a->n >= ACL_MAX)
		return -1;
	a->rules[a->n].net = *net;
	a->rules[a->n].allow = allow;
	a->n++;
	return 0;
}

/*
 * Insertion sort, stable and in place: ACL_MAX is small, this runs once at
 * start-up, and calling it again (after more acl_add calls) is harmless.
 */
void
acl_finish(struct acl *a)
{
	size_t i, j;

	for (i = 1; i < a->n; i++) {
		struct acl_rule r = a->rules[i];

		for (j = i; j > 0 && a->rules[j - 1].net.prefix < r.net.prefix;
		     j--)
			a->rules[j] = a->rules[j - 1];
		a->rules[j] = r;
	}
}

const struct acl_rule *
acl_match(const struct acl *a, const struct ipaddr *ip)
{
	size_t i;

	/* cidr_contains checks the family: v4 rules never judge v6. */
	for (i = 0; i < a->n; i++)
		if (cidr_contains(&a->rules[i].net, ip))
			return &a->rules[i];
	return NULL;
}

bool
acl_allows(const struct acl *a, const struct ipaddr *ip)
{
	const struct acl_rule *r = acl_match(a, ip);

	return r == NULL || r->allow;
}
