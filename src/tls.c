#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "error.h"

/* As many certificates as GnuTLS itself takes from one chain file. */
#define MAX_CHAIN 16
#define MAX_PEM_BYTES (1u << 20)

struct fpg_tls {
	atomic_uint refs;
	unsigned ncerts;		  /* initialised certs */
	gnutls_pcert_st certs[MAX_CHAIN]; /* leaf first */
	gnutls_privkey_t key;		  /* NULL until initialised */
	char about[256];		  /* fpg_tls_describe() */
};

static void tls_free(struct fpg_tls *tls)
{
	if (!tls)
		return;
	for (unsigned i = 0; i < tls->ncerts; i++)
		gnutls_pcert_deinit(&tls->certs[i]);
	/* GnuTLS clears the key's numbers as it frees them. */
	gnutls_privkey_deinit(tls->key);
	free(tls);
}

/* Frees what read_pem() read, wiped first: it may hold a key. */
static void free_pem(gnutls_datum_t *pem)
{
	if (pem->data)
		explicit_bzero(pem->data, pem->size);
	free(pem->data);
	pem->data = NULL;
	pem->size = 0;
}

/* Room for a byte to read and the NUL past len in *buf (NULL at first:
 * then *cap bytes, or 4096 when 0). The old buffer is wiped before it
 * is freed (realloc would not). */
static bool grow(unsigned char **buf, size_t *cap, size_t len)
{
	if (*buf && len + 1 < *cap)
		return true;
	size_t want = !*buf ? (*cap ? *cap : 4096) : *cap * 2;
	unsigned char *p = malloc(want);
	if (!p)
		return false;
	if (*buf) {
		memcpy(p, *buf, len);
		explicit_bzero(*buf, len);
		free(*buf);
	}
	*buf = p;
	*cap = want;
	return true;
}

/*
 * The whole of a PEM file into *out, NUL-terminated (release it with
 * free_pem). Read with read(2) straight into our buffer: stdio's own
 * buffer, or a growing memstream, would leave pieces of a key in freed
 * memory. Not only regular files: a key may come through a pipe.
 */
static bool read_pem(const char *path, const char *what, gnutls_datum_t *out,
		     struct fpg_error *err)
{
	unsigned char *text = NULL;
	size_t len = 0, cap = 0;
	bool ok = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s %s: %s", what, path,
			      strerror(errno));
		return false;
	}
	/* A file's size and the NUL, and a byte to see its end without
	 * growing. */
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size < MAX_PEM_BYTES)
		cap = (size_t)st.st_size + 2;
	for (;;) {
		if (!grow(&text, &cap, len)) {
			fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
			goto out;
		}
		ssize_t n = read(fd, text + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s %s: %s", what,
				      path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len >= MAX_PEM_BYTES)
			break;
	}
	text[len] = '\0';
	if (len >= MAX_PEM_BYTES || strlen((char *)text) != len ||
	    !strstr((char *)text, "-----BEGIN ")) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s %s: not a PEM file",
			      what, path);
		goto out;
	}
	out->data = text;
	out->size = (unsigned)len;
	text = NULL;
	ok = true;
out:
	if (text)
		explicit_bzero(text, len);
	free(text);
	close(fd);
	return ok;
}

/*
 * The key must be the certificate's: GnuTLS checks that (signing a test
 * text with the key, verifying it with the certificate) when it takes
 * the pair into credentials, as libmicrohttpd had it do at start; we
 * ask it the same on a throwaway set, so a reload refuses what a start
 * would.
 */
static bool check_pair(const gnutls_datum_t *cert, const gnutls_datum_t *key,
		       const char *cert_path, const char *key_path,
		       struct fpg_error *err)
{
	gnutls_certificate_credentials_t cred = NULL;
	int rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc == 0)
		rc = gnutls_certificate_set_x509_key_mem(cred, cert, key,
							 GNUTLS_X509_FMT_PEM);
	gnutls_certificate_free_credentials(cred);
	if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "tls-key %s does not fit the certificate of "
			      "tls-cert %s",
			      key_path, cert_path);
	else if (rc < 0)
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "tls-cert %s with tls-key %s: %s", cert_path,
			      key_path, gnutls_strerror(rc));
	return rc >= 0;
}

/* tls->about: "subject, valid until date" of the leaf. */
static void describe(struct fpg_tls *tls)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t dn = {NULL, 0};
	snprintf(tls->about, sizeof(tls->about), "(undescribed)");
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &tls->certs[0].cert,
				   GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		time_t until = gnutls_x509_crt_get_expiration_time(crt);
		struct tm tm;
		char date[32] = "?";
		if (until != (time_t)-1 && gmtime_r(&until, &tm))
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC",
				 &tm);
		snprintf(tls->about, sizeof(tls->about), "%s, valid until %s",
			 (const char *)dn.data, date);
	}
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
}

struct fpg_tls *fpg_tls_load(const char *cert_path, const char *key_path,
			     struct fpg_error *err)
{
	gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
	struct fpg_tls *tls = calloc(1, sizeof(*tls));
	bool ok = false;
	int rc;
	if (!tls) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		goto out;
	}
	if (!read_pem(cert_path, "tls-cert", &cert, err) ||
	    !read_pem(key_path, "tls-key", &key, err))
		goto out;
	tls->ncerts = MAX_CHAIN;
	rc = gnutls_pcert_list_import_x509_raw(tls->certs, &tls->ncerts, &cert,
					       GNUTLS_X509_FMT_PEM,
					       GNUTLS_X509_CRT_LIST_SORT);
	if (rc < 0 || tls->ncerts == 0) {
		tls->ncerts = 0;
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "tls-cert %s: %s",
			      cert_path,
			      rc == GNUTLS_E_SHORT_MEMORY_BUFFER
				  ? "more than 16 certificates"
				  : gnutls_strerror(rc));
		goto out;
	}
	if ((rc = gnutls_privkey_init(&tls->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(
		 tls->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "tls-key %s: %s",
			      key_path, gnutls_strerror(rc));
		goto out;
	}
	if (!check_pair(&cert, &key, cert_path, key_path, err))
		goto out;
	describe(tls);
	atomic_init(&tls->refs, 1);
	ok = true;
out:
	free_pem(&cert);
	free_pem(&key);
	if (!ok) {
		tls_free(tls);
		tls = NULL;
	}
	return tls;
}

void fpg_tls_ref(struct fpg_tls *tls)
{
	if (tls)
		atomic_fetch_add_explicit(&tls->refs, 1, memory_order_relaxed);
}

void fpg_tls_unref(struct fpg_tls *tls)
{
	if (tls &&
	    atomic_fetch_sub_explicit(&tls->refs, 1, memory_order_acq_rel) == 1)
		tls_free(tls);
}

void fpg_tls_credentials(struct fpg_tls *tls, gnutls_pcert_st **certs,
			 unsigned *ncerts, gnutls_privkey_t *key)
{
	*certs = tls->certs;
	*ncerts = tls->ncerts;
	*key = tls->key;
}

const char *fpg_tls_describe(const struct fpg_tls *tls)
{
	return tls->about;
}
