// GET /listen latency: SUBS subscribers over CHANNELS channels on one
// fasterpg; notifications sent with SELECT pg_notify through POST /query
// at RATE per second for SECONDS; the time from sending each /query until
// every subscriber of its channel has the event. Node's own clock, one
// process: no clock skew.
//
//   node bench/listen.mjs PORT [SUBS] [CHANNELS] [RATE] [SECONDS]
import http from 'node:http';

const [port, subs = 100, channels = 10, rate = 500, seconds = 10] =
	process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const sent = new Map(); // payload -> [sent at, subscribers still to get it]
const lat = [];
let ready = 0, lost = 0, gaps = 0;

function subscribe(ch) {
	return new Promise((resolve) => {
		http.get({ port, host: '127.0.0.1', path: `/listen?channel=${ch}` }, (res) => {
			let buf = '';
			res.setEncoding('utf8');
			res.on('data', (d) => {
				buf += d;
				let i;
				while ((i = buf.indexOf('\n\n')) >= 0) {
					const ev = buf.slice(0, i);
					buf = buf.slice(i + 2);
					if (ev.includes(': listening')) { ready++; resolve(); }
					if (ev.startsWith('event: gap')) gaps++;
					const m = ev.match(/^data: (.*)$/m);
					if (!ev.startsWith('event: notify') || !m) continue;
					const p = JSON.parse(m[1]).payload;
					const s = sent.get(p);
					if (!s) continue;
					if (--s[1] === 0) {
						lat.push(performance.now() - s[0]);
						sent.delete(p);
					}
				}
			});
		});
	});
}

function notify(ch, payload) {
	const body = JSON.stringify({ sql: 'SELECT pg_notify($1, $2)', params: [ch, payload] });
	const req = http.request({ port, host: '127.0.0.1', path: '/query', method: 'POST', agent,
		headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
		(res) => res.resume());
	req.end(body);
}

const per = new Array(channels).fill(0);
const waits = [];
for (let i = 0; i < subs; i++) { per[i % channels]++; waits.push(subscribe(`bench_${i % channels}`)); }
await Promise.all(waits);
const total = rate * seconds;
let n = 0;
const t0 = performance.now();
await new Promise((done) => {
	const tick = setInterval(() => {
		const due = Math.min(total, Math.floor((performance.now() - t0) / 1000 * rate));
		for (; n < due; n++) {
			const c = n % channels, p = `n${n}`;
			sent.set(p, [performance.now(), per[c]]);
			notify(`bench_${c}`, p);
		}
		if (n >= total) { clearInterval(tick); setTimeout(done, 2000); }
	}, 2);
});
lost = sent.size;
lat.sort((a, b) => a - b);
const q = (f) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(f * lat.length))].toFixed(2) : 'n/a';
console.log(`listen: ${subs} subscribers, ${channels} channels, ${total} notifications at ${rate}/s: ` +
	`p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, p99.9 ${q(0.999)} ms, max ${lat.length ? lat[lat.length - 1].toFixed(2) : 'n/a'} ms; ` +
	`not delivered to all: ${lost}, gaps: ${gaps}`);
process.exit(0);
