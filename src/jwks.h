/*
 * A JWKS fetched from --jwks-url by a thread of its own, so that no
 * worker ever waits on the network: once at start (fpg_jwks_fetch), then
 * every refresh_s, and early when a worker meets a key id none of our keys
 * has (fpg_jwks_poke; at most once every few seconds). Each JWKS fetched
 * goes to the owner's callback, on the fetching thread; a failed fetch is
 * logged and the keys the owner has stay.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

struct fpg_jwks;

/* text: the response body (len bytes), borrowed for the call. */
typedef void (*fpg_jwks_fn)(void *ctx, const char *text, size_t len);

/* url is copied. Nothing is fetched yet. NULL with err on failure. */
struct fpg_jwks *fpg_jwks_new(const char *url, unsigned refresh_s,
			      fpg_jwks_fn fn, void *ctx,
			      struct fpg_error *err);

/* Fetches now on the caller's thread and calls fn; false with err
 * (which does not show the URL's query or credentials). */
bool fpg_jwks_fetch(struct fpg_jwks *j, struct fpg_error *err) FPG_MUST_CHECK;

/* Starts the refreshing thread. */
bool fpg_jwks_start(struct fpg_jwks *j, struct fpg_error *err) FPG_MUST_CHECK;

/* A key id was unknown: fetch soon. Any thread; never waits on a fetch. */
void fpg_jwks_poke(struct fpg_jwks *j);

/* Stops the thread (waiting for a fetch under way) and frees. NULL no-op. */
void fpg_jwks_free(struct fpg_jwks *j);
