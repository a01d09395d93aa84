const Memcached = require('memcached');
const PORT = process.env.PORT;
const SRV = '127.0.0.1:' + PORT;
function norm(v) {
  return JSON.stringify(v, (k, x) => {
    if (x && x.type === 'Buffer' && Array.isArray(x.data)) return 'buf:' + Buffer.from(x.data).toString('hex').slice(0, 64);
    if (typeof x === 'string' && x.length > 80) return 'str(' + x.length + ')';
    return x;
  });
}
function call(m, meth, ...args) {
  return new Promise((res) => {
    const t = setTimeout(() => res('TIMEOUT'), 10000);
    m[meth](...args, (err, data) => {
      clearTimeout(t);
      res(err ? 'error ' + String(err.message || err).split(PORT).join('PORT') + (data !== undefined ? ' data=' + norm(data) : '') : data);
    });
  });
}
async function p(name, v) { v = await v; console.log(name + ': ' + (typeof v === 'string' ? JSON.stringify(v) : norm(v))); }
function serverStats(r) { return Array.isArray(r) && r.length === 1 ? r[0] : r; }
(async () => {
  const opts = { timeout: 5000, retries: 0, failures: 0, poolSize: 1, idle: 60000, retry: 100, reconnect: 100 };
  const m = new Memcached(SRV, opts);
  await p('version', call(m, 'version').then((r) => serverStats(r)).then((s) => s && typeof s === 'object' ? [s.major, s.minor, s.bugfix] : s));
  await p('set', call(m, 'set', 'a', '1', 0));
  await p('get', call(m, 'get', 'a'));
  await p('get miss', call(m, 'get', 'missing'));
  await p('add existing', call(m, 'add', 'a', '2', 0));
  await p('add new', call(m, 'add', 'b', '2', 0));
  await p('replace', call(m, 'replace', 'b', '3', 0));
  await p('replace missing', call(m, 'replace', 'c', '3', 0));
  await p('append', call(m, 'append', 'a', 'x'));
  await p('prepend', call(m, 'prepend', 'a', 'y'));
  await p('append missing', call(m, 'append', 'zz', 'x'));
  await p('get a', call(m, 'get', 'a'));
  await p('set n', call(m, 'set', 'n', 10, 0));
  await p('get n', call(m, 'get', 'n'));
  await p('incr', call(m, 'incr', 'n', 5));
  await p('decr', call(m, 'decr', 'n', 100));
  await p('incr missing', call(m, 'incr', 'nope', 1));
  await p('incr non-numeric', call(m, 'incr', 'a', 1));
  await p('incr big', call(m, 'incr', 'n', '18446744073709551615'));
  await p('incr wrap', call(m, 'incr', 'n', 1));
  await p('incr invalid delta', call(m, 'incr', 'n', 'abc'));
  await p('getMulti', call(m, 'getMulti', ['a', 'n', 'nope', 'b']));
  for (let i = 0; i < 30; i++) await call(m, 'set', 'k' + i, { i: i, s: 'v' + i }, 0);
  await p('getMulti json', call(m, 'getMulti', [...Array(33).keys()].map((i) => 'k' + i)).then((r) => Object.keys(r).length + ' ' + norm(r.k7)));
  await p('delete', call(m, 'del', 'b'));
  await p('delete missing', call(m, 'del', 'b'));
  await p('touch', call(m, 'touch', 'a', 100));
  await p('touch missing', call(m, 'touch', 'nope', 100));
  const gs = await call(m, 'gets', 'a');
  await p('gets', [gs && gs.a, gs && typeof gs.cas]);
  await p('cas good', call(m, 'cas', 'a', 'casv', gs.cas, 0));
  await p('cas stale', call(m, 'cas', 'a', 'casv2', gs.cas, 0));
  await p('cas missing', call(m, 'cas', 'nokey', 'x', gs.cas, 0));
  await p('cas bad token', call(m, 'cas', 'a', 'x', 'notanumber', 0));
  await p('get after cas', call(m, 'get', 'a'));
  await p('gets missing', call(m, 'gets', 'nope'));
  await p('unicode', call(m, 'set', 'u', 'h\u00e9 \u2603 \u{1F600}', 0).then(() => call(m, 'get', 'u')));
  await p('json', call(m, 'set', 'j', { x: [1, 2.5, null], y: 'z' }, 0).then(() => call(m, 'get', 'j')));
  await p('buffer', call(m, 'set', 'bf', Buffer.from([0, 1, 2, 255, 13, 10]), 0).then(() => call(m, 'get', 'bf')));
  await p('number', call(m, 'set', 'num', 3.25, 0).then(() => call(m, 'get', 'num')));
  await p('empty', call(m, 'set', 'ev', '', 0).then(() => call(m, 'get', 'ev')));
  await p('crlf in value', call(m, 'set', 'crlf', 'a\r\nb\r\nEND\r\n', 0).then(() => call(m, 'get', 'crlf')));
  await p('expiry future', call(m, 'set', 'f', 'v', 100).then(() => call(m, 'get', 'f')));
  await p('expired absolute', call(m, 'set', 'e', 'v', Math.floor(Date.now() / 1000) - 100).then(() => call(m, 'get', 'e')));
  await p('expired negative', call(m, 'set', 'e2', 'v', -1).then(() => call(m, 'get', 'e2')));
  await p('key 250', call(m, 'set', 'K'.repeat(250), 'v', 0).then(() => call(m, 'get', 'K'.repeat(250))));
  await p('key 251 (hashed)', call(m, 'set', 'L'.repeat(251), 'v', 0).then(() => call(m, 'get', 'L'.repeat(251))));
  const big = 'B'.repeat(1024 * 1024 - 100);
  await p('big set', call(m, 'set', 'big', big, 0));
  await p('big get', call(m, 'get', 'big').then((v) => typeof v === 'string' ? v.length + ' ' + (v === big) : v));
  const st = serverStats(await call(m, 'stats'));
  await p('stats', ['curr_items', 'total_items', 'cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'incr_hits', 'incr_misses', 'cas_hits', 'cas_badval', 'cas_misses', 'touch_hits', 'touch_misses', 'delete_hits', 'delete_misses', 'server'].map((k) => k + '=' + String(st[k]).split(PORT).join('PORT')));
  console.log('KEYS stats: ' + Object.keys(st).join(','));
  const se = serverStats(await call(m, 'settings'));
  await p('settings', ['maxbytes', 'item_size_max', 'cas_enabled', 'binding_protocol', 'evictions'].map((k) => k + '=' + se[k]));
  console.log('KEYS stats settings: ' + Object.keys(se).join(','));
  const sl = serverStats(await call(m, 'slabs'));
  await p('slabs', [typeof sl, Object.keys(sl).filter((k) => !/^\d/.test(k))]);
  await p('slab fields', [...new Set(Object.values(sl).filter((x) => x && typeof x === 'object').flatMap((x) => Object.keys(x)))]);
  const it = serverStats(await call(m, 'items'));
  const cls = Object.keys(it).filter((k) => /^\d+$/.test(k));
  await p('items', [cls.reduce((a, c) => a + Number(it[c].number), 0), it.server && it.server.split(PORT).join('PORT')]);
  await p('item fields', [...new Set(cls.flatMap((c) => Object.keys(it[c])))]);
  let keys = [];
  for (const c of cls) {
    let d = await call(m, 'cachedump', SRV, Number(c), Number(it[c].number));
    if (d && !Array.isArray(d)) d = [d];
    if (Array.isArray(d)) keys = keys.concat(d.map((x) => x.key + ' ' + x.b));
  }
  console.log('DUMP cachedump: ' + keys.sort().join(','));
  await p('cachedump missing class', call(m, 'cachedump', SRV, 63, 10));
  await p('cachedump bad class', call(m, 'cachedump', SRV, 200, 10));
  await p('flush', call(m, 'flush'));
  await p('get after flush', call(m, 'get', 'a'));
  m.end();
  // SERVER_ERROR makes this library drop the server (and spawn `ping`): last, on its own client.
  const m2 = new Memcached(SRV, opts);
  await p('too big set', call(m2, 'set', 'big2', 'C'.repeat(1024 * 1024 - 20), 0));
  process.exit(0);
})();
