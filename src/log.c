#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"

static atomic_int log_level = FPG_LOG_INFO;
static atomic_bool log_json = false;
/* The host program's sink (fpg_options.log): called under the lock, so
 * that it gets one line at a time and never a torn fn/ctx pair. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static fpg_log_fn sink_fn;
static void *sink_ctx;
static atomic_bool sink_set = false;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *fpg_log_level_to_str(enum fpg_log_level level)
{
	if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
		return level_names[level];
	return "unknown";
}

bool fpg_log_level_parse(const char *s, enum fpg_log_level *out)
{
	for (int i = 0; i <= FPG_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum fpg_log_level)i;
			return true;
		}
	}
	return false;
}

void fpg_log_configure(enum fpg_log_level level, bool json, fpg_log_fn fn,
		       void *ctx)
{
	atomic_store(&log_level, (int)level);
	atomic_store(&log_json, json);
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_ctx = ctx;
	atomic_store(&sink_set, fn != NULL);
	pthread_mutex_unlock(&sink_lock);
}

bool fpg_log_enabled(enum fpg_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level,
						  memory_order_relaxed);
}

bool fpg_log_json(void)
{
	return atomic_load(&log_json);
}

/* A text value that needs quotes to read back as one. */
static bool needs_quotes(const char *v)
{
	if (!*v)
		return true;
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20)
			return true;
	return false;
}

static void put_text_value(struct fpg_buf *line, const char *v)
{
	if (!needs_quotes(v)) {
		fpg_buf_puts(line, v);
		return;
	}
	/* JSON's escapes: quotes, backslashes and control characters. */
	fpg_buf_json_str(line, v, strlen(v));
}

static void put_fields(struct fpg_buf *line, bool json,
		       const struct fpg_log_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f[i].type == FPG_LOG_STR && !f[i].str)
			continue;
		if (json) {
			fpg_buf_putc(line, ',');
			fpg_buf_json_str(line, f[i].key, strlen(f[i].key));
			fpg_buf_putc(line, ':');
		} else {
			fpg_buf_printf(line, " %s=", f[i].key);
		}
		switch (f[i].type) {
		case FPG_LOG_STR:
			if (json)
				fpg_buf_json_str(line, f[i].str, strlen(f[i].str));
			else
				put_text_value(line, f[i].str);
			break;
		case FPG_LOG_INT:
			fpg_buf_printf(line, "%lld", f[i].num);
			break;
		case FPG_LOG_MS:
			fpg_buf_printf(line, "%.3f", f[i].ms);
			break;
		}
	}
}

void fpg_log_vfields(enum fpg_log_level level, const char *component,
		     const char *req_id, const struct fpg_log_field *fields,
		     size_t n, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	char ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	struct fpg_buf line;
	fpg_buf_init(&line);
	bool json = atomic_load(&log_json);
	if (json) {
		fpg_buf_printf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\","
				      "\"component\":",
			       ts, now.tv_nsec / 1000000,
			       fpg_log_level_to_str(level));
		fpg_buf_json_str(&line, component, strlen(component));
		if (req_id) {
			fpg_buf_puts(&line, ",\"request_id\":");
			fpg_buf_json_str(&line, req_id, strlen(req_id));
		}
		fpg_buf_puts(&line, ",\"msg\":");
		fpg_buf_json_str(&line, msg, strlen(msg));
		put_fields(&line, true, fields, n);
		fpg_buf_puts(&line, "}\n");
	} else {
		fpg_buf_printf(&line, "%s.%03ldZ %s %s%s%s: %s", ts,
			       now.tv_nsec / 1000000,
			       fpg_log_level_to_str(level), component,
			       req_id ? " " : "", req_id ? req_id : "", msg);
		put_fields(&line, false, fields, n);
		fpg_buf_putc(&line, '\n');
	}
	bool sent = false;
	if (!line.failed && atomic_load(&sink_set)) {
		pthread_mutex_lock(&sink_lock);
		if (sink_fn) {
			line.data[line.len - 1] = '\0'; /* the newline */
			sink_fn(sink_ctx, (int)level, line.data);
			sent = true;
		}
		pthread_mutex_unlock(&sink_lock);
	}
	/* One write per line keeps lines from different threads whole. */
	if (!line.failed && !sent)
		fwrite(line.data, 1, line.len, stderr);
	fpg_buf_deinit(&line);
}

void fpg_log_fields(enum fpg_log_level level, const char *component,
		    const char *req_id, const struct fpg_log_field *fields,
		    size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fpg_log_vfields(level, component, req_id, fields, n, fmt, ap);
	va_end(ap);
}

void fpg_log_write(enum fpg_log_level level, const char *component,
		   const char *req_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fpg_log_vfields(level, component, req_id, NULL, 0, fmt, ap);
	va_end(ap);
}
