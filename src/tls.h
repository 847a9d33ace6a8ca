/*
 * The TLS certificate chain and private key (--tls-cert, --tls-key), as
 * GnuTLS serves them through libmicrohttpd's certificate callback. A
 * loaded pair never changes: a reload (SIGHUP) loads a new one and every
 * worker swaps to it, while each TLS connection keeps a reference to the
 * pair its handshake used, so the old pair goes with its last reference
 * (any thread).
 */
#pragma once

#include <stdbool.h>

#include <gnutls/abstract.h>

#include "fasterpg.h"

struct fpg_tls;

/*
 * Reads both PEM files and parses them; the key must be the
 * certificate's (GnuTLS's own check, the one libmicrohttpd makes). NULL
 * with err ("tls-cert PATH: why", "tls-key PATH: why") on failure. The
 * key file's bytes are wiped from our memory once parsed, and no message
 * quotes them. The caller owns the one reference.
 */
struct fpg_tls *fpg_tls_load(const char *cert_path, const char *key_path,
			     struct fpg_error *err) FPG_MUST_CHECK;

/* References: the last unref frees (the key wiped). NULL no-op. */
void fpg_tls_ref(struct fpg_tls *tls);
void fpg_tls_unref(struct fpg_tls *tls);

/*
 * What a gnutls_certificate_retrieve_function2 hands GnuTLS: the chain
 * (leaf first) and the key, borrowed, valid while the caller holds a
 * reference.
 */
void fpg_tls_credentials(struct fpg_tls *tls, gnutls_pcert_st **certs,
			 unsigned *ncerts, gnutls_privkey_t *key);

/* The leaf's subject and end of validity, for logs (borrowed). */
const char *fpg_tls_describe(const struct fpg_tls *tls);
