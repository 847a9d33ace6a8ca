/*
 * HMAC-SHA256 keyed once: every MAC starts from a copy of the keyed
 * context, so no algorithm lookup or key setup happens per MAC. An
 * instance is used by one thread at a time (each worker keeps its own).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define FPG_HMAC_LEN 32

struct fpg_hmac;

/* Keyed with len bytes of key (copied), or with random bytes when key is
 * NULL. NULL on failure. */
struct fpg_hmac *fpg_hmac_new(const void *key, size_t len);

void fpg_hmac_free(struct fpg_hmac *h);

/* The MAC of the n parts (parts[i], lens[i] bytes each) one after the
 * other, into out. */
bool fpg_hmac_parts(const struct fpg_hmac *h, const void *const *parts,
		    const size_t *lens, size_t n,
		    unsigned char out[FPG_HMAC_LEN]);
