// fasterpg's POST /sql against the real npm drivers of Neon's HTTP
// protocol: @neondatabase/serverless (neon(), with neonConfig.fetchEndpoint
// pointed at the gateway) and Drizzle's neon-http on top of it. Run by
// tests/integration/test_js.c (it_js), which starts the servers and passes
// FPG_JS_CONFIG (JSON):
//   open    /sql URL of a server without --auth (runs as user, database db)
//   auth    /sql URL of a server with --auth password,jwt
//   db, user, alice (alice's password), jwt_secret (HS256), jwt_role
// Prints one line per test; exits 1 when any failed.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { neon, neonConfig, NeonDbError } from '@neondatabase/serverless';
import { drizzle } from 'drizzle-orm/neon-http';
import { sql as dsql, eq, gt, asc } from 'drizzle-orm';
import {
  pgSchema, serial, text, numeric, bigint, timestamp, jsonb, boolean, integer,
  customType,
} from 'drizzle-orm/pg-core';

const cfg = JSON.parse(process.env.FPG_JS_CONFIG ?? '{}');
for (const k of ['open', 'auth', 'db', 'user', 'alice', 'jwt_secret', 'jwt_role'])
  if (!cfg[k]) throw new Error(`FPG_JS_CONFIG lacks ${k}`);

// The host of a connection string picks the server; the gateway itself
// ignores hosts (it serves one database).
neonConfig.fetchEndpoint = (host) => (host === 'auth.test' ? cfg.auth : cfg.open);

const openUrl = `postgresql://${cfg.user}:ignored@open.test/${cfg.db}`;
const sql = neon(openUrl);
const schema = `js_${process.pid}`;

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

async function rejects(promise, fields) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof NeonDbError, `not a NeonDbError: ${e}`);
    for (const [k, v] of Object.entries(fields))
      assert.deepEqual(e[k], v, `${k} of ${e.message}`);
    return e;
  }
  assert.fail(`no error, expected ${JSON.stringify(fields)}`);
}

// ---- the serverless driver ----

test('parameters of many types round-trip', async () => {
  const when = new Date('2024-02-29T13:14:15.678Z');
  const bytes = Buffer.from([0, 1, 2, 254, 255]);
  const obj = { a: [1, 'two', null], b: { c: true }, 'é': 'ü' };
  const [r] = await sql`SELECT
      ${9007199254740993n}::int8 AS big,
      ${'-12345678901234567890.000000001'}::numeric AS num,
      ${when}::timestamptz AS at,
      ${[1, 2, 3]}::int4[] AS ints,
      ${['a,b', 'q"uote', null, 'back\\slash', '']}::text[] AS texts,
      ${[[1, 2], [3, 4]]}::int[] AS grid,
      ${obj}::jsonb AS doc,
      ${JSON.stringify([1, { x: 2 }])}::json AS js,
      ${bytes}::bytea AS data,
      ${null}::text AS nothing,
      ${true}::bool AS yes,
      ${3.25}::float8 AS f,
      ${'2024-01-31'}::date AS day,
      ${'6e1f2a5c-95b0-4a57-b7a4-6a0c1b8f3d11'}::uuid AS id,
      ${'snowman ☃ and emoji 🐘'}::text AS t`;
  assert.equal(r.big, '9007199254740993'); // int8 stays a string
  assert.equal(r.num, '-12345678901234567890.000000001');
  assert.ok(r.at instanceof Date);
  assert.equal(r.at.getTime(), when.getTime());
  assert.deepEqual(r.ints, [1, 2, 3]);
  assert.deepEqual(r.texts, ['a,b', 'q"uote', null, 'back\\slash', '']);
  assert.deepEqual(r.grid, [[1, 2], [3, 4]]);
  assert.deepEqual(r.doc, obj);
  assert.deepEqual(r.js, [1, { x: 2 }]);
  assert.ok(Buffer.isBuffer(r.data));
  assert.deepEqual([...r.data], [...bytes]);
  assert.equal(r.nothing, null);
  assert.equal(r.yes, true);
  assert.equal(r.f, 3.25);
  assert.ok(r.day instanceof Date);
  assert.equal(r.id, '6e1f2a5c-95b0-4a57-b7a4-6a0c1b8f3d11');
  assert.equal(r.t, 'snowman ☃ and emoji 🐘');
});

test('values the driver parses from PostgreSQL text', async () => {
  const [r] = await sql`SELECT 'infinity'::timestamptz AS inf,
      '1 day 02:03:04'::interval AS iv, ARRAY[true, NULL]::bool[] AS flags,
      ARRAY['{"k": 1}'::jsonb] AS docs, 'NaN'::float8 AS nan, 9223372036854775807::int8 AS max,
      '\\x00ff'::bytea AS b, point(1, 2) AS p`;
  assert.equal(r.inf, Infinity);
  assert.deepEqual({ ...r.iv }, { days: 1, hours: 2, minutes: 3, seconds: 4 });
  assert.deepEqual(r.flags, [true, null]);
  assert.deepEqual(r.docs, [{ k: 1 }]);
  assert.ok(Number.isNaN(r.nan));
  assert.equal(r.max, '9223372036854775807');
  assert.deepEqual([...r.b], [0, 255]);
  assert.deepEqual(r.p, { x: 1, y: 2 });
});

test('arrayMode and fullResults', async () => {
  const full = await sql.query('SELECT $1::int AS a, $2::text AS b', [1, 'x'],
    { arrayMode: true, fullResults: true });
  assert.deepEqual(full.rows, [[1, 'x']]);
  assert.equal(full.command, 'SELECT');
  assert.equal(full.rowCount, 1);
  assert.equal(full.rowAsArray, true);
  assert.deepEqual(full.fields.map((f) => [f.name, f.dataTypeID, f.format]),
    [['a', 23, 'text'], ['b', 25, 'text']]);
  assert.deepEqual(await sql.query('SELECT 1 AS a', []), [{ a: 1 }]);
  const arrays = neon(openUrl, { arrayMode: true, fullResults: true });
  const r = await arrays`SELECT 1 AS one, 2 AS two`;
  assert.deepEqual(r.rows, [[1, 2]]);
  assert.deepEqual(r.fields.map((f) => f.name), ['one', 'two']);
  // Columns of a table say which: tableID and columnID.
  await sql.query(`CREATE TABLE ${schema}.f (a int, b text)`);
  const t = await sql.query(`SELECT b, a FROM ${schema}.f`, [], { fullResults: true });
  const [oid] = await sql.query(`SELECT '${schema}.f'::regclass::oid::int AS oid`);
  assert.deepEqual(t.fields.map((f) => [f.tableID, f.columnID]),
    [[oid.oid, 2], [oid.oid, 1]]);
  assert.deepEqual(t.rows, []);
  assert.equal(t.rowCount, 0);
});

test('commands and their counts', async () => {
  await sql.query(`CREATE TABLE ${schema}.c (id int PRIMARY KEY, v text)`);
  const ins = await sql.query(`INSERT INTO ${schema}.c VALUES (1, 'a'), (2, 'b'), (3, 'c')`,
    [], { fullResults: true });
  assert.equal(ins.command, 'INSERT');
  assert.equal(ins.rowCount, 3);
  const upd = await sql.query(`UPDATE ${schema}.c SET v = upper(v) WHERE id > $1 RETURNING id`,
    [1], { fullResults: true });
  assert.equal(upd.command, 'UPDATE');
  assert.equal(upd.rowCount, 2);
  assert.deepEqual(upd.rows.map((r) => r.id).sort(), [2, 3]);
  const del = await sql.query(`DELETE FROM ${schema}.c`, [], { fullResults: true });
  assert.equal(del.command, 'DELETE');
  assert.equal(del.rowCount, 3);
});

test('transaction() with isolation, read-only and deferrable', async () => {
  const rows = await sql.transaction([
    sql`SELECT current_setting('transaction_isolation') AS v`,
    sql`SELECT current_setting('transaction_read_only') AS v`,
    sql`SELECT current_setting('transaction_deferrable') AS v`,
  ], { isolationLevel: 'Serializable', readOnly: true, deferrable: true });
  assert.deepEqual(rows.map((r) => r[0].v), ['serializable', 'on', 'on']);
  const [[rr]] = await sql.transaction((txn) => [
    txn`SELECT current_setting('transaction_isolation') AS v`,
  ], { isolationLevel: 'RepeatableRead' });
  assert.equal(rr.v, 'repeatable read');
  const [, [n]] = await sql.transaction([
    sql`CREATE TABLE ${sql.unsafe(schema)}.t (x int)`,
    sql`SELECT count(*)::int AS n FROM ${sql.unsafe(schema)}.t`,
  ]);
  assert.equal(n.n, 0);
  await rejects(sql.transaction([sql`CREATE TABLE ${sql.unsafe(schema)}.ro (x int)`],
    { readOnly: true }), { code: '25006' });
});

test('a failing statement rolls the whole transaction back', async () => {
  await sql.query(`CREATE TABLE ${schema}.atomic (id int PRIMARY KEY)`);
  const e = await rejects(sql.transaction([
    sql`INSERT INTO ${sql.unsafe(schema)}.atomic VALUES (1)`,
    sql`INSERT INTO ${sql.unsafe(schema)}.atomic VALUES (2)`,
    sql`INSERT INTO ${sql.unsafe(schema)}.atomic VALUES (1)`,
  ]), { code: '23505', constraint: 'atomic_pkey', table: 'atomic', schema });
  assert.match(e.detail, /Key \(id\)=\(1\) already exists/);
  const [{ n }] = await sql.query(`SELECT count(*)::int AS n FROM ${schema}.atomic`);
  assert.equal(n, 0);
  // Arrays of results of each mode in one transaction.
  const [a, b] = await sql.transaction([
    sql.query('SELECT 1 AS x', [], { arrayMode: true }),
    sql.query('SELECT 2 AS x', [], { fullResults: true }),
  ]);
  assert.deepEqual(a, [[1]]);
  assert.deepEqual(b.rows, [{ x: 2 }]);
});

test('errors carry their fields', async () => {
  let e = await rejects(sql`SELECT 1/0`, { code: '22012', severity: 'ERROR', routine: 'int4div' });
  assert.equal(e.message, 'division by zero');
  assert.ok(e.file && e.line);
  e = await rejects(sql.query('SELECT nope FROM nowhere_at_all'), { code: '42P01', position: '18' });
  e = await rejects(sql.query("DO $$BEGIN EXECUTE 'SELECT 1 +'; END$$"),
    { code: '42601', internalQuery: 'SELECT 1 +' });
  assert.ok(e.where && e.internalPosition);
  await sql.query(`CREATE TABLE ${schema}.chk (n int CONSTRAINT positive CHECK (n > 0), d text NOT NULL)`);
  await rejects(sql.query(`INSERT INTO ${schema}.chk VALUES (-1, 'x')`),
    { code: '23514', constraint: 'positive', table: 'chk', schema });
  await rejects(sql.query(`INSERT INTO ${schema}.chk VALUES (1, NULL)`),
    { code: '23502', column: 'd', table: 'chk' });
  await rejects(sql.query("SELECT 'x'::int"), { code: '22P02' });
  await rejects(sql.query("SELECT raise_hint()"), { code: '42883' }).then((x) =>
    assert.ok(x.hint, 'a hint'));
});

test('a large answer arrives whole', async () => {
  const rows = await sql.query(
    "SELECT g, md5(g::text) AS h FROM generate_series(1, 30000) g", [],
    { arrayMode: true });
  assert.equal(rows.length, 30000);
  assert.equal(rows[29999][0], 30000);
  assert.match(rows[29999][1], /^[0-9a-f]{32}$/);
});

test('the connection string names the database served', async () => {
  const other = neon(`postgresql://${cfg.user}:x@open.test/not_${cfg.db}`);
  await rejects(other`SELECT 1`, { code: '3D000' });
  const stranger = neon(`postgresql://someone_else:x@open.test/${cfg.db}`);
  await rejects(stranger`SELECT 1`, { code: '28000' });
});

// ---- logins ----

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const mac = createHmac('sha256', cfg.jwt_secret).update(head).digest('base64url');
  return `${head}.${mac}`;
}

test('--auth password: the connection string logs in', async () => {
  const alice = neon(`postgresql://alice:${encodeURIComponent(cfg.alice)}@auth.test/${cfg.db}`);
  const [r] = await alice`SELECT current_user AS u`;
  assert.equal(r.u, 'alice');
  const [[t]] = await alice.transaction([alice`SELECT current_user AS u`]);
  assert.equal(t.u, 'alice');
  const wrong = neon(`postgresql://alice:wrong@auth.test/${cfg.db}`);
  await rejects(wrong`SELECT 1`, { code: '28P01' });
  const elsewhere = neon(`postgresql://alice:${cfg.alice}@auth.test/elsewhere`);
  await rejects(elsewhere`SELECT 1`, { code: '3D000' });
});

test('--auth jwt: authToken is the login', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = jwt({ role: cfg.jwt_role, sub: 'js-user', exp: now + 600 });
  const anon = neon(`postgresql://authenticated@auth.test/${cfg.db}`, { authToken: token });
  const [r] = await anon`SELECT current_user AS u,
      current_setting('request.jwt.claims', true)::jsonb->>'sub' AS sub`;
  assert.deepEqual(r, { u: cfg.jwt_role, sub: 'js-user' });
  const fn = neon(`postgresql://authenticated@auth.test/${cfg.db}`, { authToken: async () => token });
  assert.deepEqual(await fn`SELECT 1 AS one`, [{ one: 1 }]);
  const expired = jwt({ role: cfg.jwt_role, exp: now - 3600 });
  await rejects(neon(`postgresql://authenticated@auth.test/${cfg.db}`,
    { authToken: expired })`SELECT 1`, { code: '28000' });
});

// ---- Drizzle's neon-http ----

const bytea = customType({ dataType: () => 'bytea' });

test('drizzle neon-http: insert, select, update, delete', async () => {
  const s = pgSchema(schema);
  const items = s.table('items', {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    price: numeric('price', { precision: 12, scale: 2 }),
    qty: bigint('qty', { mode: 'bigint' }),
    at: timestamp('at', { withTimezone: true, mode: 'date' }),
    tags: text('tags').array(),
    meta: jsonb('meta'),
    ok: boolean('ok').default(true),
    blob: bytea('blob'),
    n: integer('n'),
  });
  const db = drizzle({ client: sql });
  await db.execute(dsql.raw(`CREATE TABLE ${schema}.items (id serial PRIMARY KEY,
      name text NOT NULL, price numeric(12,2), qty int8, at timestamptz,
      tags text[], meta jsonb, ok bool DEFAULT true, blob bytea, n int)`));
  const at = new Date('2025-06-01T10:00:00.123Z');
  const inserted = await db.insert(items).values([
    { name: 'widget', price: '9.99', qty: 9007199254740993n, at, tags: ['a', 'b,c'],
      meta: { color: 'red', sizes: [1, 2] }, blob: '\\x0a0b', n: 1 },
    { name: 'gadget', price: null, qty: null, at: null, tags: [], meta: null, n: 2 },
  ]).returning();
  assert.equal(inserted.length, 2);
  assert.equal(inserted[0].name, 'widget');
  assert.equal(inserted[0].price, '9.99');
  assert.equal(inserted[0].qty, 9007199254740993n);
  assert.ok(inserted[0].at instanceof Date);
  assert.equal(inserted[0].at.getTime(), at.getTime());
  assert.deepEqual(inserted[0].tags, ['a', 'b,c']);
  assert.deepEqual(inserted[0].meta, { color: 'red', sizes: [1, 2] });
  assert.equal(inserted[0].ok, true);
  assert.deepEqual(inserted[1].tags, []);
  const found = await db.select().from(items).where(eq(items.name, 'widget'));
  assert.equal(found.length, 1);
  assert.equal(found[0].id, inserted[0].id);
  const some = await db.select({ name: items.name, n: items.n }).from(items)
    .where(gt(items.n, 0)).orderBy(asc(items.n));
  assert.deepEqual(some, [{ name: 'widget', n: 1 }, { name: 'gadget', n: 2 }]);
  const updated = await db.update(items).set({ price: '1.50' })
    .where(eq(items.name, 'gadget')).returning({ price: items.price });
  assert.deepEqual(updated, [{ price: '1.50' }]);
  const deleted = await db.delete(items).where(eq(items.n, 2)).returning({ id: items.id });
  assert.equal(deleted.length, 1);
  const res = await db.execute(dsql`SELECT count(*)::int AS n FROM ${items}`);
  assert.deepEqual(res.rows, [{ n: 1 }]);
});

test('drizzle neon-http: batch() is one transaction', async () => {
  const s = pgSchema(schema);
  const log = s.table('log', { id: integer('id').primaryKey(), msg: text('msg') });
  const db = drizzle({ client: sql });
  await db.execute(dsql.raw(`CREATE TABLE ${schema}.log (id int PRIMARY KEY, msg text)`));
  const [ins, rows] = await db.batch([
    db.insert(log).values({ id: 1, msg: 'one' }).returning(),
    db.select().from(log),
  ]);
  assert.deepEqual(ins, [{ id: 1, msg: 'one' }]);
  assert.deepEqual(rows, [{ id: 1, msg: 'one' }]);
  let err;
  try {
    await db.batch([
      db.insert(log).values({ id: 2, msg: 'two' }),
      db.insert(log).values({ id: 1, msg: 'again' }),
    ]);
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'the batch failed');
  const cause = err.cause ?? err;
  assert.equal(cause.code, '23505');
  assert.deepEqual(await db.select().from(log), [{ id: 1, msg: 'one' }]);
});

// ---- run ----

let failed = 0;
const deadline = setTimeout(() => {
  console.error('js_neon: timed out');
  process.exit(2);
}, 120000);
try {
  await sql.query(`CREATE SCHEMA ${schema}`);
  for (const t of tests) {
    const start = Date.now();
    try {
      await t.fn();
      console.log(`ok   ${t.name} (${Date.now() - start} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${t.name}\n${e?.stack ?? e}`);
    }
  }
} finally {
  await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((e) =>
    console.log(`cleanup: ${e}`));
  clearTimeout(deadline);
}
console.log(`${tests.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
