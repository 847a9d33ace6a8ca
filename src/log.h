/*
 * Levelled logger. Lines go to stderr as text or JSON; every line names
 * its component and, when there is one, the request id.
 */
#pragma once

#include <stdbool.h>

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

void fpg_log_write(enum fpg_log_level level, const char *component,
		   const char *req_id, const char *fmt, ...) FPG_PRINTF(4, 5);

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
