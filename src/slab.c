/* slab: a free list threaded through the objects given back, and a mark
 * below which every object has been used once (above it, pages untouched). */
#include "slab.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct slab {
	char *base;    /* count objects of stride bytes; NULL if count is 0 */
	size_t stride; /* size, at least a pointer: a free object links on */
	size_t count, mapped;
	size_t fresh; /* objects [0, fresh) have been handed out once */
	size_t in_use;
	void *free; /* given back, each holding the next one's address */
};

static size_t
stride_of(size_t size)
{
	return size < sizeof(void *) ? sizeof(void *) : size;
}

/* count objects, rounded up to whole pages; 0 on overflow. */
static size_t
mapping_bytes(size_t size, size_t count)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), stride = stride_of(size);

	if (count > (SIZE_MAX - page) / stride)
		return 0;
	return (count * stride + page - 1) / page * page;
}

unsigned long long
slab_bytes(size_t size, size_t count)
{
	return sizeof(struct slab) + mapping_bytes(size, count);
}

struct slab *
slab_new(size_t size, size_t count)
{
	struct slab *s;
	size_t bytes = mapping_bytes(size, count);

	if (count > 0 && bytes == 0) {
		errno = ENOMEM;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->stride = stride_of(size);
	s->count = count;
	s->mapped = bytes;
	if (count == 0)
		return s;
	/* mmap, not calloc: its pages are zero and untouched until used,
	 * where calloc may clear (and so touch) all of them at once. */
	s->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->base == MAP_FAILED) {
		free(s);
		return NULL;
	}
	return s;
}

void *
slab_alloc(struct slab *s)
{
	void *obj;

	if (s->free != NULL) {
		obj = s->free;
		memcpy(&s->free, obj, sizeof(s->free));
	} else if (s->fresh < s->count) {
		obj = s->base + s->fresh++ * s->stride;
	} else {
		return NULL;
	}
	memset(obj, 0, s->stride);
	s->in_use++;
	return obj;
}

void
slab_free(struct slab *s, void *obj)
{
	if (obj == NULL)
		return;
	assert((char *)obj >= s->base &&
	       (size_t)((char *)obj - s->base) < s->fresh * s->stride &&
	       (size_t)((char *)obj - s->base) % s->stride == 0);
	memcpy(obj, &s->free, sizeof(s->free));
	s->free = obj;
	s->in_use--;
}

size_t
slab_in_use(const struct slab *s)
{
	return s->in_use;
}

void
slab_destroy(struct slab *s)
{
	if (s == NULL)
		return;
	if (s->base != NULL)
		munmap(s->base, s->mapped);
	free(s);
}
