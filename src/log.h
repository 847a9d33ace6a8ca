/*
 * Levelled logger. Lines go to stderr as text or JSON; every line names
 * its component and, when there is one, the request id.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

enum fpg_log_level {
	FPG_LOG_ERROR,
	FPG_LOG_WARN,
	FPG_LOG_INFO,
	FPG_LOG_DEBUG,
};

const char *fpg_log_level_to_str(enum fpg_log_level level);

/* Parses "error", "warn", "info" or "debug". */
bool fpg_log_level_parse(const char *s, enum fpg_log_level *out);

/* Process-wide settings; the last server created wins. fn (NULL: stderr)
 * gets each line instead of stderr (see fpg_log_fn). */
void fpg_log_configure(enum fpg_log_level level, bool json, fpg_log_fn fn,
		       void *ctx);

bool fpg_log_enabled(enum fpg_log_level level);

/* Text or JSON lines (the last fpg_log_configure's). */
bool fpg_log_json(void);

void fpg_log_write(enum fpg_log_level level, const char *component,
		   const char *req_id, const char *fmt, ...) FPG_PRINTF(4, 5);

/*
 * A field of a structured line: in JSON a key of the line's object (a
 * string or a number), in text "key=value" after the message (a value
 * with blanks, quotes or "=" in double quotes). Keys are plain words,
 * none of ts, level, component, request_id and msg.
 */
enum fpg_log_type {
	FPG_LOG_STR, /* str; NULL leaves the field out */
	FPG_LOG_INT, /* num */
	FPG_LOG_MS,  /* ms, a duration in milliseconds with 3 decimals */
};

struct fpg_log_field {
	const char *key;
	enum fpg_log_type type;
	const char *str;
	long long num;
	double ms;
};

#define FPG_LOG_F_STR(k, v) {.key = (k), .type = FPG_LOG_STR, .str = (v)}
#define FPG_LOG_F_INT(k, v)                                                \
	{.key = (k), .type = FPG_LOG_INT, .num = (long long)(v)}
#define FPG_LOG_F_MS(k, v) {.key = (k), .type = FPG_LOG_MS, .ms = (v)}

/* A line with fields[n] (borrowed for the call) after its message. The
 * caller checks fpg_log_enabled first. */
void fpg_log_fields(enum fpg_log_level level, const char *component,
		    const char *req_id, const struct fpg_log_field *fields,
		    size_t n, const char *fmt, ...) FPG_PRINTF(6, 7);
void fpg_log_vfields(enum fpg_log_level level, const char *component,
		     const char *req_id, const struct fpg_log_field *fields,
		     size_t n, const char *fmt, va_list ap) FPG_PRINTF(6, 0);

/* The level check comes first so that arguments are not formatted. */
#define FPG_LOG(level, comp, rid, ...)                                     \
	do {                                                               \
		if (fpg_log_enabled(level))                                \
			fpg_log_write(level, comp, rid, __VA_ARGS__);      \
	} while (0)
#define fpg_log_error(comp, rid, ...) FPG_LOG(FPG_LOG_ERROR, comp, rid, __VA_ARGS__)
#define fpg_log_warn(comp, rid, ...) FPG_LOG(FPG_LOG_WARN, comp, rid, __VA_ARGS__)
#define fpg_log_info(comp, rid, ...) FPG_LOG(FPG_LOG_INFO, comp, rid, __VA_ARGS__)
#define fpg_log_debug(comp, rid, ...) FPG_LOG(FPG_LOG_DEBUG, comp, rid, __VA_ARGS__)
