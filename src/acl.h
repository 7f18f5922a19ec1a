/*
 * acl: allow and deny lists of CIDR prefixes, longest prefix wins.
 * Map: parser layer; calls addr.
 */
#ifndef ECHOD_ACL_H
#define ECHOD_ACL_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>

#define ACL_MAX 512

struct acl_rule {
	struct cidr net;
	bool allow;
};

/* Rules sorted longest prefix first at build time, so the first match is
 * the longest one. An address that matches nothing is allowed. */
struct acl {
	struct acl_rule rules[ACL_MAX];
	size_t n;
};

/* Add a rule; -1 if the acl is full or the same prefix is already listed
 * with the opposite verdict (an ambiguity the policy must not contain). */
int acl_add(struct acl *a, const struct cidr *net, bool allow);

/* Sort the rules; call once after the last acl_add. */
void acl_finish(struct acl *a);

/* The longest rule whose prefix contains ip, NULL if none does. */
const struct acl_rule *acl_match(const struct acl *a, const struct ipaddr *ip);

/* The verdict for an address (IPv4-mapped IPv6 already folded by addr). */
bool acl_allows(const struct acl *a, const struct ipaddr *ip);

#endif
