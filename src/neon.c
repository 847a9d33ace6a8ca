#include "neon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "error.h"

static bool is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

/* Copies the option key of opts into dst; false when it does not fit. */
static bool take(const PQconninfoOption *opts, const char *key, char *dst,
		 size_t size)
{
	for (const PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, key) != 0 || !o->val)
			continue;
		size_t n = strlen(o->val);
		if (n >= size)
			return false;
		memcpy(dst, o->val, n + 1);
	}
	return true;
}

bool fpg_neon_parse_login(const char *s, struct fpg_neon_login *out,
			  struct fpg_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!is_uri(s)) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "Neon-Connection-String must be a postgresql:// "
			      "URI (postgresql://user:password@host/dbname)");
		return false;
	}
	/* libpq's own reading of URIs (percent-decoding, [v6] hosts), of
	 * what comes before the parameters: those are ignored, and libpq
	 * would refuse the ones it does not know (an ORM's ?schema=). Its
	 * message may quote the string, password included: not passed on. */
	char *uri = strndup(s, strcspn(s, "?#"));
	char *msg = NULL;
	PQconninfoOption *opts = uri ? PQconninfoParse(uri, &msg) : NULL;
	PQfreemem(msg);
	if (uri) {
		explicit_bzero(uri, strlen(uri));
		free(uri);
	} else {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return false;
	}
	if (!opts) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "Neon-Connection-String is not a valid "
			      "postgresql:// URI");
		return false;
	}
	bool ok = take(opts, "user", out->user, sizeof(out->user)) &&
		  take(opts, "password", out->password,
		       sizeof(out->password)) &&
		  take(opts, "dbname", out->dbname, sizeof(out->dbname));
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
	if (!ok) {
		fpg_neon_login_wipe(out);
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "Neon-Connection-String: the user or database "
			      "name is longer than 63 bytes, or the password "
			      "longer than 1023");
	}
	return ok;
}

void fpg_neon_login_wipe(struct fpg_neon_login *l)
{
	explicit_bzero(l->password, sizeof(l->password));
}

bool fpg_neon_parse_bool(const char *name, const char *value, bool def,
			 bool *out, struct fpg_error *err)
{
	*out = def;
	if (!value)
		return true;
	if (strcasecmp(value, "true") == 0 || strcasecmp(value, "false") == 0) {
		*out = value[0] == 't' || value[0] == 'T';
		return true;
	}
	fpg_error_set(err, FPG_ERR_REQUEST, 400,
		      "%s must be true or false", name);
	return false;
}

bool fpg_neon_parse_isolation(const char *value, enum fpg_tx_isolation *out,
			      struct fpg_error *err)
{
	static const struct {
		const char *driver, *sql;
		enum fpg_tx_isolation level;
	} names[] = {
		{"ReadUncommitted", "read uncommitted", FPG_TX_READ_COMMITTED},
		{"ReadCommitted", "read committed", FPG_TX_READ_COMMITTED},
		{"RepeatableRead", "repeatable read", FPG_TX_REPEATABLE_READ},
		{"Serializable", "serializable", FPG_TX_SERIALIZABLE},
	};
	*out = FPG_TX_READ_COMMITTED;
	if (!value)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (strcasecmp(value, names[i].driver) == 0 ||
		    strcasecmp(value, names[i].sql) == 0) {
			*out = names[i].level;
			return true;
		}
	}
	fpg_error_set(err, FPG_ERR_REQUEST, 400,
		      "Neon-Batch-Isolation-Level must be ReadUncommitted, "
		      "ReadCommitted, RepeatableRead or Serializable");
	return false;
}
