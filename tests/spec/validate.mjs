#!/usr/bin/env node
// Checks the exchanges the integration tests recorded (FPG_TEST_RECORD,
// tests/support/http.c: one JSON line per request) against
// api/openapi.yaml, so that the spec cannot drift from the server.
//
//   node tests/spec/validate.mjs SPEC RECORD...
//
// Each exchange is matched to the spec's path template and method, then
// its status to one of the operation's responses. A request that matches
// no operation (an unknown path, a method the path does not have, a CORS
// preflight) is checked against the spec's `x-unrouted` answers instead:
// 404 only for an unknown path, 405 only for a known one (and its Allow
// must name exactly the path's methods), 204 only for OPTIONS. For the
// answer found: every header it documents as required is there, every
// documented header it carries fits its schema, none of the headers
// below is there undocumented, the Content-Type is one it documents, and
// a JSON body (complete, not compressed) fits the schema. A request it
// took (2xx) used only documented query arguments, with values that fit.
//
// Failures are grouped (operation, status, problem) and shown with one
// exchange each; the exit status is 1 when there is any.

import {readFileSync} from 'node:fs';
import {parse} from 'yaml';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

// Headers of the contract: the server must not send them undocumented.
const CHECKED_HEADERS = ['x-request-id', 'cache-control', 'vary',
	'content-encoding', 'retry-after', 'www-authenticate', 'allow'];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch',
	'trace'];

const [specPath, ...recordPaths] = process.argv.slice(2);
if (!specPath || recordPaths.length === 0) {
	console.error('usage: validate.mjs SPEC RECORD...');
	process.exit(2);
}
const spec = parse(readFileSync(specPath, 'utf8'));

function deref(obj) {
	let seen = 0;
	while (obj && obj.$ref) {
		if (!obj.$ref.startsWith('#/') || ++seen > 20)
			throw new Error(`unsupported $ref ${obj.$ref}`);
		obj = obj.$ref.slice(2).split('/').reduce(
			(o, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')],
			spec);
	}
	return obj;
}

// OpenAPI 3.0 schema -> JSON Schema (draft-07) for Ajv: nullable becomes
// a "null" type, $refs point into the "spec" schema, OpenAPI-only
// keywords go.
function toJsonSchema(s) {
	if (Array.isArray(s))
		return s.map(toJsonSchema);
	if (!s || typeof s !== 'object')
		return s;
	if (s.$ref)
		return {$ref: 'spec' + s.$ref};
	const out = {};
	for (const [k, v] of Object.entries(s)) {
		if (['nullable', 'example', 'xml', 'externalDocs', 'deprecated',
			'discriminator', 'readOnly', 'writeOnly'].includes(k) ||
		    k.startsWith('x-'))
			continue;
		if (k === 'properties')
			out[k] = Object.fromEntries(Object.entries(v).map(
				([p, ps]) => [p, toJsonSchema(ps)]));
		else
			out[k] = toJsonSchema(v);
	}
	if (s.nullable === true && s.type) {
		out.type = [s.type, 'null'];
		if (out.enum)
			out.enum = [...out.enum, null];
	}
	return out;
}

const ajv = new Ajv({allErrors: true, strict: false});
addFormats(ajv);
ajv.addFormat('binary', true);
ajv.addSchema({$id: 'spec', components: toJsonSchema(spec.components)});
const compiled = new WeakMap();
function validator(schema) {
	if (!compiled.has(schema))
		compiled.set(schema, ajv.compile(toJsonSchema(schema)));
	return compiled.get(schema);
}

const templates = Object.keys(spec.paths).map((t) => ({
	template: t,
	item: spec.paths[t],
	re: new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&')
		.replace(/\{[^}/]+\}/g, '[^/]+') + '$'),
}));

function findPath(path) {
	return templates.find((t) => t.re.test(path));
}

function headerValue(schema, value) {
	if (schema?.type === 'integer' || schema?.type === 'number')
		return /^-?[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : value;
	return value;
}

function checkResponse(x, resp, fail) {
	resp = deref(resp);
	const headers = x.headers || {};
	const documented = {};
	for (const [name, h] of Object.entries(resp.headers || {}))
		documented[name.toLowerCase()] = deref(h);
	for (const [name, h] of Object.entries(documented)) {
		const v = headers[name];
		if (v === undefined) {
			if (h.required)
				fail(`header ${name} missing`);
			continue;
		}
		const validate = validator(h.schema || {});
		if (!validate(headerValue(h.schema, v)))
			fail(`header ${name}: ${ajv.errorsText(validate.errors)}`);
	}
	for (const name of CHECKED_HEADERS)
		if (headers[name] !== undefined && !documented[name])
			fail(`header ${name} sent, not documented`);
	const type = (headers['content-type'] || '').split(';')[0].trim()
		.toLowerCase();
	const content = resp.content;
	const empty = headers['content-length'] === '0' ||
		(x.status === 204 && !headers['transfer-encoding']);
	if (!content) {
		if (!empty)
			fail('a body, and the spec documents none');
		return;
	}
	const media = content[type] ??
		content[type.replace(/\/.*/, '/*')] ?? content['*/*'];
	if (!media) {
		fail(`Content-Type ${type || '(none)'} not documented ` +
			`(${Object.keys(content).join(', ')})`);
		return;
	}
	if (!('body' in x) || !media.schema)
		return;
	let body = x.body;
	if (x.body_parsed === false) {
		// jansson refused it (e.g. an integer past 64 bits): JavaScript
		// reads such numbers as doubles, which is enough here.
		try {
			body = JSON.parse(x.body);
		} catch (e) {
			fail(`the JSON body does not parse: ${e.message}`);
			return;
		}
	}
	const validate = validator(media.schema);
	if (!validate(body))
		fail('body: ' + ajv.errorsText(validate.errors, {dataVar: 'body'}));
}

// A query string's value as its schema's type reads it.
function paramValue(schema, value) {
	if (schema?.type === 'boolean')
		return value === 'true' ? true : value === 'false' ? false : value;
	return headerValue(schema, value);
}

// A request the server took (2xx) must have used only the documented
// query arguments, with documented values.
function checkQuery(x, item, op, fail) {
	const params = [...(item.parameters || []), ...(op.parameters || [])]
		.map(deref).filter((p) => p.in === 'query');
	const query = new URLSearchParams(x.path.split('?')[1] || '');
	for (const [name, value] of query) {
		const p = params.find((q) => q.name === name);
		if (!p) {
			fail(`query argument ${name} taken, not documented`);
			continue;
		}
		const validate = validator(p.schema || {});
		if (!validate(paramValue(p.schema, value)))
			fail(`query argument ${name}=${value}: ` +
				ajv.errorsText(validate.errors));
	}
}

const failures = new Map();
let checked = 0;
const exercised = new Set();

// HEAD is answered wherever GET is (docs/api.md): as the GET operation,
// without a body.
function check(x) {
	const path = x.path.split('?')[0];
	const head = x.method === 'HEAD';
	if (head)
		delete x.body;
	const method = x.method.toLowerCase();
	const t = findPath(path);
	const op = t?.item[method] ?? (head ? t?.item.get : undefined);
	const name = op ? `${x.method} ${t.template}`
		: `unrouted ${x.method} ${t ? t.template : '(unknown path)'}`;
	const fail = (problem) => {
		const key = `${name} ${x.status}: ${problem}`;
		const f = failures.get(key);
		if (f)
			f.count++;
		else
			failures.set(key, {count: 1, example: x});
	};
	checked++;
	if (op) {
		exercised.add(`${name} ${x.status}`);
		const resp = op.responses[String(x.status)] ?? op.responses.default;
		if (!resp) {
			fail(`status ${x.status} not in the spec for this operation`);
			return;
		}
		checkResponse(x, resp, fail);
		if (x.status >= 200 && x.status < 300)
			checkQuery(x, t.item, op, fail);
		return;
	}
	const resp = spec['x-unrouted']?.[String(x.status)];
	if (!resp) {
		fail(`status ${x.status} not in x-unrouted`);
		return;
	}
	if (x.status === 404 && t)
		fail('404 for a path the spec has');
	if (x.status === 405) {
		if (!t) {
			fail('405 for a path the spec does not have');
		} else {
			const methods = METHODS.filter((m) => t.item[m]);
			if (t.item.get && !t.item.head)
				methods.push('head');
			const want = methods.map((m) => m.toUpperCase()).sort()
				.join(', ');
			const got = (x.headers?.allow || '').split(/,\s*/).sort()
				.join(', ');
			if (got !== want)
				fail(`Allow "${x.headers?.allow}" is not the spec's "${want}"`);
		}
	}
	if (x.status === 204 && x.method !== 'OPTIONS')
		fail('204 for a request that is not a preflight');
	checkResponse(x, resp, fail);
}

for (const file of recordPaths) {
	const text = readFileSync(file, 'utf8');
	let n = 0;
	for (const line of text.split('\n')) {
		n++;
		if (!line)
			continue;
		let x;
		try {
			x = JSON.parse(line);
		} catch (e) {
			console.error(`${file}:${n}: not JSON: ${e.message}`);
			failures.set(`${file}:${n} not JSON`, {count: 1, example: line});
			continue;
		}
		check(x);
	}
}

function shorten(x) {
	const s = JSON.stringify(x);
	return s.length > 1500 ? s.slice(0, 1500) + '...' : s;
}

for (const [key, f] of failures) {
	console.log(`FAIL ${key} (${f.count}x)`);
	console.log(`  e.g. ${shorten(f.example)}`);
}
const ops = [];
for (const t of templates)
	for (const m of METHODS)
		if (t.item[m])
			for (const status of Object.keys(t.item[m].responses))
				ops.push(`${m.toUpperCase()} ${t.template} ${status}`);
const unseen = ops.filter((o) => !exercised.has(o));
console.log(`${checked} exchanges checked against ${specPath}: ` +
	`${failures.size} kinds of failure; ` +
	`${ops.length - unseen.length} of ${ops.length} documented answers seen`);
if (process.env.FPG_SPEC_UNSEEN)
	console.log('not seen: ' + unseen.join('; '));
process.exit(failures.size ? 1 : 0);
