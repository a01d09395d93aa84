const memjs = require('memjs');
const PORT = process.env.PORT;
const m = memjs.Client.create('127.0.0.1:' + PORT, { timeout: 3, retries: 1, logger: { log: () => {} }, failover: false });
function statsOf(key) {
  return new Promise((res) => {
    const t = setTimeout(() => res('no answer'), 4000);
    m.statsWithKey(key, (err, server, st) => { clearTimeout(t); res(err ? 'error ' + err.message : st); });
  });
}
(async () => {
  await m.set('a', '1', {}); await m.set('b:x', '22', {}); await m.get('a'); await m.get('zz');
  // Left out: 'detail' alone (memcached 1.6.18 reads bytes past the key, whatever the buffer
  // held before) and 'sizes_enable'/'sizes_disable' (memcached sends no terminating packet).
  for (const k of ['cachedump 1 0', 'cachedump 1 1', 'cachedump 99 1', 'cachedump', 'cachedump x y', 'detail on', 'detail dump', 'detail off', 'detail bogus', 'sizes', 'extstore', 'reset', 'reset x', 'slabs x', 'conns', 'help', 'proxy', 'proxyfuncs', ' ', 'items ', 'a'.repeat(300), 'version']) {
    let r = await statsOf(k);
    if (typeof r === 'object') r = Object.keys(r).length > 40 ? Object.keys(r).length + ' keys' : r;
    console.log(JSON.stringify(k.slice(0, 40)) + ': ' + JSON.stringify(r));
  }
  process.exit(0);
})();
