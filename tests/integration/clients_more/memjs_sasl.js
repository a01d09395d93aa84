const memjs = require('memjs');
const PORT = process.env.PORT;
const SRV = '127.0.0.1:' + PORT;
const quiet = { log: () => {} };
async function p(name, f) {
  let v;
  try { v = await Promise.race([f(), new Promise((r) => setTimeout(() => r('no answer in 5 s'), 5000))]); } catch (e) { v = 'raises ' + String(e && e.message || e).split(PORT).join('PORT'); }
  console.log(name + ': ' + JSON.stringify(v));
}
(async () => {
  const mk = (u, pw) => memjs.Client.create(SRV, { timeout: 3, retries: 1, logger: quiet, failover: false, username: u, password: pw });
  const good = mk('testuser', 's3cret');
  await p('auth set', () => good.set('a', 'v', {}));
  await p('auth get', async () => (await good.get('a')).value.toString());
  await p('auth incr', () => good.increment('n', 1, { initial: 9 }));
  const bad = mk('testuser', 'wrong');
  await p('bad password get', async () => { const r = await bad.get('a'); return r.value && r.value.toString(); });
  const none = memjs.Client.create(SRV, { timeout: 3, retries: 1, logger: quiet, failover: false });
  await p('no credentials get', async () => { const r = await none.get('a'); return r.value && r.value.toString(); });
  await p('auth stats', () => new Promise((res) => good.stats((e, s, st) => res(e ? e.message : [st.auth_cmds, st.auth_errors]))));
  process.exit(0);
})();
