/* errmsg: one formatter for every module's error path. */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

int
errmsg(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}
