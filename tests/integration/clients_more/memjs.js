const memjs = require('memjs');
const PORT = process.env.PORT;
const SRV = '127.0.0.1:' + PORT;
const quiet = { log: () => {} };
function show(v) {
  if (Buffer.isBuffer(v)) return v.length > 64 ? 'buf(' + v.length + ')' : 'buf:' + v.toString('hex');
  if (v === undefined) return 'undefined';
  return JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' && Array.isArray(x.data)) ? 'buf:' + Buffer.from(x.data).toString('hex').slice(0, 128) : x);
}
async function p(name, f) {
  let v;
  try { v = await f(); } catch (e) { v = 'raises ' + String(e && e.message || e).split(PORT).join('PORT'); }
  console.log(name + ': ' + show(v));
}
function statsOf(c, key) {
  return new Promise((res) => {
    const t = setTimeout(() => res('timeout'), 10000);
    c.statsWithKey(key, (err, server, st) => { clearTimeout(t); res(err ? 'error ' + err.message : st); });
  });
}
(async () => {
  const opts = { timeout: 10, retries: 1, logger: quiet, failover: false };
  if (process.env.SASL_USER) { opts.username = process.env.SASL_USER; opts.password = process.env.SASL_PASS; }
  const m = memjs.Client.create(SRV, opts);
  const g = async (k) => { const r = await m.get(k); return r.value === null ? null : [r.value.toString('latin1'), r.flags.toString('hex')]; };
  await p('set', () => m.set('a', '1', {}));
  await p('get', () => g('a'));
  await p('get miss', () => g('missing'));
  await p('add existing', () => m.add('a', '2', {}));
  await p('add new', () => m.add('b', '2', {}));
  await p('replace', () => m.replace('b', '3', {}));
  await p('replace missing', () => m.replace('c', '3', {}));
  await p('append', () => m.append('a', 'x'));
  await p('prepend', () => m.prepend('a', 'y'));
  await p('append missing', () => m.append('zz', 'x'));
  await p('prepend missing', () => m.prepend('zz', 'x'));
  await p('get a', () => g('a'));
  await p('delete', () => m.delete('b'));
  await p('delete missing', () => m.delete('b'));
  await p('set n', () => m.set('n', '10', {}));
  await p('incr', () => m.increment('n', 5, {}));
  await p('decr', () => m.decrement('n', 100, {}));
  await p('get n', () => g('n'));
  await p('incr missing initial', () => m.increment('cnt', 3, { initial: 42 }));
  await p('incr again', () => m.increment('cnt', 3, { initial: 42 }));
  await p('decr missing initial', () => m.decrement('cnt2', 3, { initial: 7, expires: 100 }));
  await p('get counters', async () => [await g('cnt'), await g('cnt2')]);
  await p('incr non-numeric', () => m.increment('a', 1, {}));
  await p('incr expired initial', () => m.increment('cx', 1, { initial: 5, expires: 0xffffffff }));
  await p('get cx', () => g('cx'));
  await p('touch', () => m.touch('a', 100));
  await p('touch missing', () => m.touch('nope', 100));
  await p('expires', () => m.set('e', 'v', { expires: 100 }).then(() => g('e')));
  await p('expired absolute', () => m.set('e2', 'v', { expires: Math.floor(Date.now() / 1000) - 100 }).then(() => g('e2')));
  await p('unicode', () => m.set('cl\u00e9 \u2603', 'h\u00e9 \u{1F600}', {}).then(() => g('cl\u00e9 \u2603')));
  await p('binary value', async () => { const b = Buffer.alloc(1024); for (let i = 0; i < b.length; i++) b[i] = i & 255; await m.set('bin', b, {}); const r = await m.get('bin'); return Buffer.compare(r.value, b) === 0; });
  await p('empty value', () => m.set('ev', '', {}).then(() => g('ev')));
  await p('key 250', () => m.set('K'.repeat(250), 'v', {}).then(() => g('K'.repeat(250))));
  const m2 = memjs.Client.create(SRV, opts);
  await p('key 251 (server closes)', () => Promise.race([m2.set('K'.repeat(251), 'v', {}), new Promise((r) => setTimeout(() => r('no answer'), 3000))]));
  m2.close();
  await p('after 251', () => g('a'));
  for (const sz of [1024 * 1024 - 100, 1024 * 1024 - 60, 1024 * 1024, 2 * 1024 * 1024]) {
    await p('size ' + sz, async () => { const v = Buffer.alloc(sz, 0x5a); const r = await m.set('sz' + sz, v, {}); const x = await m.get('sz' + sz); return [r, x.value && x.value.length]; });
  }
  await p('after big', () => g('a'));
  const pipe = [];
  for (let i = 0; i < 50; i++) pipe.push(m.set('p' + i, 'v' + i, {}));
  await p('pipelined sets', async () => (await Promise.all(pipe)).every((x) => x === true));
  await p('pipelined gets', async () => (await Promise.all([...Array(55).keys()].map((i) => g('p' + i)))).map((x) => x && x[0]).join(','));
  const st = await statsOf(m, '');
  await p('stats', () => ['curr_items', 'total_items', 'cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'touch_hits', 'touch_misses', 'delete_hits', 'delete_misses', 'auth_cmds', 'auth_errors'].map((k) => k + '=' + st[k]));
  console.log('KEYS stats: ' + Object.keys(st).join(','));
  const it = await statsOf(m, 'items');
  await p('stats items', () => Object.keys(it).filter((k) => /:number$/.test(k)).reduce((a, k) => a + Number(it[k]), 0));
  await p('stats items fields', () => [...new Set(Object.keys(it).map((k) => k.split(':')[2]))]);
  const sl = await statsOf(m, 'slabs');
  await p('stats slabs', () => Object.keys(sl).filter((k) => !/^\d/.test(k)));
  await p('stats slabs fields', () => [...new Set(Object.keys(sl).filter((k) => /^\d/.test(k)).map((k) => k.split(':')[1]))]);
  const se = await statsOf(m, 'settings');
  await p('stats settings', () => ['maxbytes', 'item_size_max', 'cas_enabled', 'auth_enabled_sasl', 'binding_protocol'].map((k) => k + '=' + se[k]));
  await p('stats sizes', async () => { const s = await statsOf(m, 'sizes'); return s; });
  console.log('KEYS stats settings: ' + Object.keys(se).join(','));
  await p('stats conns', async () => { const s = await statsOf(m, 'conns'); return typeof s === 'object' ? Object.keys(s).map((k) => k.replace(/^\d+:/, 'N:')).filter((k, i, a) => a.indexOf(k) === i) : s; });
  await p('stats bogus', async () => statsOf(m, 'bogus'));
  await p('stats detail dump', async () => statsOf(m, 'detail dump'));
  await p('stats reset', async () => statsOf(m, 'reset'));
  await p('stats after reset', async () => { const s = await statsOf(m, ''); return ['cmd_get', 'cmd_set', 'get_hits', 'curr_items'].map((k) => k + '=' + s[k]); });
  await p('flush', () => m.flush().then((r) => Object.values(r)));
  await p('get after flush', () => g('a'));
  m.quit();
  await new Promise((r) => setTimeout(r, 100));
  m.close();
})();
