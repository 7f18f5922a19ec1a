/* config: the policy from the file and the flags (config.h). */
#include "config.h"
#include "errmsg.h"
#include "exitcodes.h"
#include "reload.h"

#include <fcntl.h>
#include <stdio.h>

static const struct options *command_line; /* the flags, for a reload */

int
config_build(const char *text, size_t len, struct policy *p, char *err,
             size_t errlen)
{
	struct policy_error e;
	char msg[256];

	if (policy_defaults(p, &e) != 0) {
		errmsg(err, errlen, "echod: built-in policy:%u: %s", e.line,
		       e.msg);
		return EXIT_SOFTWARE;
	}
	if (command_line->config != NULL &&
	    policy_parse(text, len, p, &e) != 0) {
		if (e.line > 0)
			errmsg(err, errlen, "%s:%u: %s", command_line->config,
			       e.line, e.msg);
		else
			errmsg(err, errlen, "%s: %s", command_line->config,
			       e.msg);
		return EXIT_CONFIG;
	}
	cli_apply(command_line, p);
	if (cli_check_listen(p, msg, sizeof(msg)) != 0) {
		errmsg(err, errlen, "echod: %s", msg);
		return EXIT_USAGE;
	}
	return 0;
}

int
config_load(const struct options *o, struct policy *p, char *err, size_t errlen)
{
	static char text[POLICY_MAX_FILE];
	struct policy_error e;
	size_t len = 0;

	command_line = o;
	if (o->config != NULL && policy_read_at(AT_FDCWD, o->config, text,
	                                        sizeof(text), &len, &e) != 0) {
		errmsg(err, errlen, "%s: %s", o->config, e.msg);
		return EXIT_CONFIG;
	}
	return config_build(text, len, p, err, errlen);
}

int
config_print(const struct policy *p, char *err, size_t errlen)
{
	static char text[POLICY_PRINT_MAX];
	char digest[RELOAD_DIGEST_LEN];

	if (policy_print(p, text, sizeof(text)) < 0) {
		errmsg(err, errlen,
		       "echod: the policy does not fit in -T's "
		       "buffer");
		return EXIT_SOFTWARE;
	}
	reload_digest_of(p, digest);
	fputs(text, stdout);
	printf("# digest %s\n", digest);
	return 0;
}
