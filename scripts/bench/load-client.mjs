// The benchmark's HTTP load client, in a process of its own so it never shares the server's
// event loop or CPU accounting. One JSON argument:
//   { url, n, concurrency, headers?, expectStatus?, expectCompleted?, topic? }
// prints { ms, rate, p50, p99, startedAt, endedAt, latencies } (epoch ms; startedAt = first request sent; latencies sorted, ms).
const opts = JSON.parse(process.argv[2]);
const { url, n, concurrency, headers = {}, expectStatus = 202, expectCompleted = false, topic = 'load' } = opts;
const lat = [];
let next = 0;
let firstSent;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      firstSent ??= s;
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ topic: `${topic} ${i}` }) });
      const body = await res.text();
      if (res.status !== expectStatus) {
        console.error(`status ${res.status}: ${body.slice(0, 300)}`);
        process.exit(1);
      }
      if (expectCompleted && JSON.parse(body).status !== 'completed') {
        console.error(`not completed: ${body.slice(0, 300)}`);
        process.exit(1);
      }
      lat.push(performance.now() - s);
    }
  }),
);
const end = performance.now();
lat.sort((a, b) => a - b);
const ms = end - firstSent;
const at = (t) => performance.timeOrigin + t;
console.log(JSON.stringify({ ms, rate: (n / ms) * 1000, p50: lat[Math.floor(n * 0.5)], p99: lat[Math.min(n - 1, Math.floor(n * 0.99))], startedAt: at(firstSent), endedAt: at(end), setupMs: firstSent - t0, latencies: lat }));
