/*
 * slab: objects of one size in one mapping reserved up front, side by side
 * and without a malloc header each: 10,000 idle connections are 10,000
 * objects and nothing more. A page costs memory only once an object on it
 * is first used; a freed object is the next one handed out.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_SLAB_H
#define ECHOD_SLAB_H

#include <stddef.h>

struct slab;

/* Room for `count` objects of `size` bytes: sizeof of their type, so
 * each is aligned as the type is (the mapping starts on a page). NULL
 * without memory, or if count * size overflows. */
struct slab *slab_new(size_t size, size_t count);

/* What slab_new(size, count) reserves, bookkeeping included: the bound
 * of its memory. */
unsigned long long slab_bytes(size_t size, size_t count);

/* An object, zeroed; NULL when all `count` are in use. */
void *slab_alloc(struct slab *s);

/* Give back an object slab_alloc handed out; NULL is fine. */
void slab_free(struct slab *s, void *obj);

/* Objects handed out and not given back. */
size_t slab_in_use(const struct slab *s);

/* Unmap every object (ones in use too) and free the slab; NULL is fine. */
void slab_destroy(struct slab *s);

#endif
