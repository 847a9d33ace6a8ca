#!/bin/sh
# Regenerates the built-in type table of src/typecache.c from a running
# PostgreSQL 15 catalog, in place between the BEGIN/END GENERATED markers.
#
#   scripts/gen_typecache_builtin.sh "host=127.0.0.1 port=5432 user=postgres"
#
# The table holds every pg_type row with oid < 16384 (FirstNormalObjectId)
# whose typtype is base, range, multirange or pseudo, plus the arrays of
# those. Built-in composite row types (pg_class, ...) and their arrays, and
# the information_schema domains, are left to the catalog lookup path.
# The kind of each type follows json_categorize_type() in PostgreSQL 15's
# src/backend/utils/adt/json.c.
set -eu
conninfo=${1:-}
file=$(dirname "$0")/../src/typecache.c

table=$(psql -X -A -t -v ON_ERROR_STOP=1 -d "$conninfo" <<'SQL'
WITH base AS (
	SELECT t.oid FROM pg_type t
	WHERE t.oid < 16384 AND t.typtype IN ('b', 'r', 'm', 'p')
	  AND (t.typelem = 0 OR t.typsubscript <> 'array_subscript_handler'::regproc
	       OR EXISTS (SELECT 1 FROM pg_type e WHERE e.oid = t.typelem
			  AND e.typtype IN ('b', 'r', 'm', 'p')))
)
SELECT format(E'\t{ %s, %s, "%s", %s, %s, ''%s'', 0, NULL },',
	t.oid,
	CASE
	WHEN t.oid = 16 THEN 'FPG_TYPE_BOOL'
	WHEN t.oid IN (20, 21, 23, 700, 701, 1700) THEN 'FPG_TYPE_NUMBER'
	WHEN t.oid = 1082 THEN 'FPG_TYPE_DATE'
	WHEN t.oid = 1114 THEN 'FPG_TYPE_TIMESTAMP'
	WHEN t.oid = 1184 THEN 'FPG_TYPE_TIMESTAMPTZ'
	WHEN t.oid IN (114, 3802) THEN 'FPG_TYPE_JSON'
	WHEN t.oid IN (2277, 5078) THEN 'FPG_TYPE_ARRAY'
	WHEN t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc
	     AND e.typarray = t.oid THEN 'FPG_TYPE_ARRAY'
	WHEN t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc
	     THEN 'FPG_TYPE_VECTOR'
	ELSE 'FPG_TYPE_STRING'
	END,
	t.typname,
	CASE WHEN t.oid IN (20, 1700) THEN 'true' ELSE 'false' END,
	CASE WHEN t.typsubscript = 'array_subscript_handler'::regproc
	     THEN t.typelem ELSE 0 END,
	CASE WHEN t.typsubscript <> 'array_subscript_handler'::regproc THEN ','
	     WHEN e.typarray = t.oid THEN e.typdelim::text
	     WHEN t.typelem <> 0 THEN ' ' ELSE ',' END)
FROM pg_type t JOIN base USING (oid)
LEFT JOIN pg_type e ON e.oid = t.typelem
ORDER BY t.oid;
SQL
)

tmp=$(mktemp)
awk -v table="$table" '
	/BEGIN GENERATED/ { print; print table; skip = 1; next }
	/END GENERATED/ { skip = 0 }
	!skip { print }
' "$file" >"$tmp"
cat "$tmp" >"$file"
rm -f "$tmp"
