require 'dalli'
require 'logger'
Dalli.logger = Logger.new($stderr); Dalli.logger.level = Logger::FATAL
PORT = ENV['PORT']
SRV = "127.0.0.1:#{PORT}"
def show(v)
  case v
  when String then v.bytesize > 64 ? "#{v.bytesize} bytes #{v.encoding} sha=#{Digest::MD5.hexdigest(v)[0, 12]}" : v.inspect
  when Hash then '{' + v.keys.sort_by(&:to_s).map { |k| "#{show(k)}=>#{show(v[k])}" }.join(', ') + '}'
  when Array then '[' + v.map { |x| show(x) }.join(', ') + ']'
  else v.inspect
  end
end
def p(n)
  v = begin
    show(yield)
  rescue StandardError => e
    "raises #{e.class}: #{e.message.gsub(PORT, 'PORT')}"
  end
  puts "#{n}: #{v}"
  $stdout.flush
end
m = Dalli::Client.new(SRV, socket_timeout: 10, socket_max_failures: 1, down_retry_delay: 0)
raw = { raw: true }
p('version') { m.version.values }
p('alive!') { m.alive!; 'ok' }
p('set') { m.set('a', '1', nil, raw) ? 'ok' : 'fail' }
p('get') { m.get('a') }
p('get miss') { m.get('missing') }
p('add existing') { m.add('a', '2', nil, raw) }
p('add new') { m.add('b', '2', nil, raw).class }
p('replace') { m.replace('b', '3', nil, raw).class }
p('replace missing') { m.replace('c', '3', nil, raw) }
p('append') { m.append('a', 'x').class }
p('prepend') { m.prepend('a', 'y').class }
p('append missing') { m.append('zz', 'x') }
p('prepend missing') { m.prepend('zz', 'x') }
p('get a') { m.get('a') }
p('set n') { m.set('n', '10', nil, raw).class }
p('incr') { m.incr('n', 5) }
p('decr') { m.decr('n', 100) }
p('decr at 0') { m.decr('n', 1) }
p('incr big') { m.incr('n', 18446744073709551615) }
p('incr wrap') { m.incr('n', 1) }
p('incr missing') { m.incr('nope', 1) }
p('incr missing default') { m.incr('cnt', 1, nil, 7) }
p('incr existing default') { m.incr('cnt', 1, nil, 7) }
p('decr missing default') { m.decr('cnt2', 1, 100, 3) }
p('decr again') { m.decr('cnt2', 1) }
p('get counter') { m.get('cnt', raw) }
p('incr non-numeric') { m.incr('a', 1) }
p('incr non-numeric default') { m.incr('a', 1, nil, 5) }
p('set spaces num') { m.set('sn', ' 12', nil, raw); m.incr('sn', 1) }
p('set long num') { m.set('ln', '1' * 21, nil, raw); m.incr('ln', 1) }
p('incr len grows') { m.set('g', '99', nil, raw); [m.incr('g', 1), m.get('g', raw)] }
p('get_multi') { m.set('m1', 'v1'); m.set('m2', [1, 'two']); m.set('m3', 3); m.get_multi('m1', 'm2', 'm3', 'm4') }
p('get_multi empty') { m.get_multi([]) }
p('get_multi many') { 60.times { |i| m.set("k#{i}", i) }; h = m.get_multi((0...70).map { |i| "k#{i}" }); [h.size, h.values.sum] }
p('get_multi dup keys') { m.get_multi('m1', 'm1', 'm3') }
p('delete') { m.delete('b').class }
p('delete missing') { m.delete('b') }
p('touch') { m.touch('a', 100) }
p('touch missing') { m.touch('nope', 100) }
p('gat') { m.gat('a', 200) }
p('gat missing') { m.gat('nope', 200) }
p('cas block') { m.cas('m1') { |v| v + '-cas' } }
p('cas block missing') { m.cas('nope') { |v| 'x' } }
p('cas! missing') { m.cas!('casnew') { |v| "was #{v.inspect}" } }
p('get after cas') { [m.get('m1'), m.get('casnew')] }
p('get_cas') { v, c = m.get_cas('m1'); [v, c.is_a?(Integer) && c > 0] }
p('set_cas good') { v, c = m.get_cas('m1'); r = m.set_cas('m1', 'new', c); [r.is_a?(Integer) && r > c] }
p('set_cas stale') { _, c = m.get_cas('m1'); m.set('m1', 'other'); m.set_cas('m1', 'x', c) }
p('set_cas missing') { m.set_cas('nope', 'x', 12345) }
p('replace_cas stale') { _, c = m.get_cas('m1'); m.set('m1', 'o2'); m.replace_cas('m1', 'x', c) }
p('replace_cas good') { _, c = m.get_cas('m1'); m.replace_cas('m1', 'y', c).is_a?(Integer) }
p('delete_cas stale') { _, c = m.get_cas('m1'); m.set('m1', 'o3'); m.delete_cas('m1', c) }
p('delete_cas good') { _, c = m.get_cas('m1'); m.delete_cas('m1', c) }
p('get_multi_cas') { m.set('c1', 'x'); h = m.get_multi_cas('c1', 'c9'); h.transform_values { |v, c| [v, c > 0] } }
p('fetch miss') { m.fetch('fk', 100) { 'computed' } }
p('fetch hit') { m.fetch('fk', 100) { 'again' } }
p('fetch no block') { m.fetch('fk2') }
p('marshal') { m.set('obj', { 'x' => [1, 2.5, nil], y: :sym }); m.get('obj') }
p('nil value') { m.set('nilv', nil); [m.get('nilv'), m.fetch('nilv') { 'blk' }] }
p('empty value') { m.set('ev', '', nil, raw); m.get('ev', raw) }
p('unicode value') { m.set('u', "h\u00e9 \u2603 \u{1F600}"); m.get('u') }
p('unicode raw value') { m.set('ur', "h\u00e9", nil, raw); v = m.get('ur', raw); [v, v.encoding.to_s] }
p('binary value') { b = (0..255).map(&:chr).join * 4; m.set('bin', b, nil, raw); m.get('bin', raw) == b }
p('unicode key') { m.set("cl\u00e9 \u2603", 'uk'); m.get("cl\u00e9 \u2603") }
p('binary key') { k = "k\x00\x01\xff\r\n end".b; m.set(k, 'bk'); m.get(k) }
p('space key') { m.set('a b', 'sp'); m.get('a b') }
p('key 250') { k = 'K' * 250; m.set(k, 'v250'); m.get(k) }
p('key 300 hashed') { k = 'L' * 300; m.set(k, 'v300'); m.get(k) }
p('unicode key 200 chars') { k = "\u00e9" * 200; [m.set(k, 'x').class, m.get(k)] }
p('after long key') { m.get('a') }
p('expiry set') { m.set('f', 'v', 100) ? 'ok' : 'fail' }
p('expiry get') { m.get('f') }
p('expired absolute') { m.set('e', 'v', Time.now.to_i - 100); m.get('e') }
p('expired negative') { m.set('e2', 'v', -1); m.get('e2') }
p('touch expire') { m.touch('f', Time.now.to_i - 100); m.get('f') }
p('expires 1s') { m.set('e3', 'v', 1); m.get('e3') }
p('touch 1s') { m.set('e4', 'v', 100); m.touch('e4', 1) }
p('gat 1s') { m.set('e5', 'v', 100); m.gat('e5', 1) }
p('incr create 1s') { m.incr('e6', 1, 1, 10) }
p('after 2.5 s') { sleep 2.5; [m.get('e3'), m.get('e4'), m.get('e5'), m.get('e6', raw), m.get('a')] }
p('incr ttl on create') { m.incr('ic', 1, Time.now.to_i - 100, 4); m.get('ic', raw) }
big1 = (0...(1024 * 1024 - 200)).map { |i| (65 + (i * 7 + i / 26) % 26).chr }.join
p('big ~1MB raw set') { m.set('big', big1, nil, raw) ? 'ok' : 'fail' }
p('big ~1MB raw get') { m.get('big', raw) == big1 }
[1024 * 1024 - 100, 1024 * 1024 - 80, 1024 * 1024 - 60, 1024 * 1024 - 50, 1024 * 1024 - 30, 1024 * 1024].each do |sz|
  p("raw size #{sz}") { v = 'Z' * sz; r = m.set("sz#{sz}", v, nil, raw.merge(compress: false)); [r.class, (m.get("sz#{sz}", raw) || '').bytesize] }
end
p('over 1MB refused') { m.set('huge', 'x' * (1024 * 1024 + 1), nil, raw.merge(compress: false)) }
rnd = Random.new(42).bytes(1024 * 1024 + 10)
p('over 1MB random compress') { m.set('huge2', rnd) }
p('over 1MB compressible') { v = 'abc' * 500_000; m.set('huge3', v) ? (m.get('huge3') == v) : nil }
big2 = Dalli::Client.new(SRV, value_max_bytes: 4 * 1024 * 1024, compress: false, socket_timeout: 10)
p('server refuses 2MB') { big2.set('huge4', 'y' * (2 * 1024 * 1024), nil, raw) }
p('after 2MB') { big2.get('a') }
p('2MB append') { big2.set('ap', 'x', nil, raw); big2.append('ap', 'y' * (1024 * 1024)) }
p('after append') { (big2.get('ap', raw) || '').bytesize }
p('compressed 100KB') { v = 'q' * 100_000; m.set('cz', v); [m.get('cz') == v, m.get('cz', raw).bytesize < 1000] }
ns = Dalli::Client.new(SRV, namespace: 'app1', socket_timeout: 10)
p('namespace set') { ns.set('a', 'nsval') ? 'ok' : 'fail' }
p('namespace get') { [ns.get('a'), m.get('app1:a'), m.get('a')] }
p('namespace get_multi') { ns.set('b', 'nb'); ns.get_multi('a', 'b', 'c') }
p('namespace incr') { ns.incr('cnt', 1, nil, 1); ns.incr('cnt', 1) }
p('namespace delete') { [ns.delete('a'), ns.get('a')].map(&:class) }
cz = Dalli::Client.new(SRV, compress: true, compression_min_size: 10, socket_timeout: 10)
p('compress on') { cz.set('zz', 'hello ' * 100); [cz.get('zz').size, m.get('zz', raw).bytesize < 600] }
p('multi block') { m.multi { m.set('q1', 'a'); m.set('q2', 'b'); m.delete('q3'); m.add('q1', 'c') }; m.get_multi('q1', 'q2') }
p('multi quiet errors') { m.multi { m.replace('nokey', 'x'); m.add('q1', 'x'); m.incr('q1', 1) }; m.get('q1') }
st = m.stats[SRV]
p('stats') { %w[curr_items total_items cmd_get cmd_set get_hits get_misses delete_hits delete_misses incr_hits incr_misses decr_hits decr_misses cas_hits cas_badval cas_misses touch_hits touch_misses cmd_touch get_flushed threads].map { |k| "#{k}=#{st[k]}" } }
puts "KEYS stats: #{st.keys.join(',')}"
it = m.stats(:items)[SRV]
p('stats items') { [it.keys.grep(/:number$/).map { |k| it[k].to_i }.sum, it.keys.map { |k| k.split(':')[2] }.uniq] }
p('stats slabs') { m.stats(:slabs)[SRV].keys.select { |k| k !~ /^\d/ } }
se = m.stats(:settings)[SRV]
p('stats settings') { %w[maxbytes maxconns item_size_max binding_protocol auth_enabled_sasl cas_enabled].map { |k| "#{k}=#{se[k]}" } }
puts "KEYS stats settings: #{se.keys.join(',')}"
p('reset_stats') { m.reset_stats.values.map(&:class) }
p('stats after reset') { s = m.stats[SRV]; %w[cmd_get cmd_set get_hits total_items curr_items].map { |k| "#{k}=#{s[k]}" } }
p('flush') { m.flush }
p('get after flush') { [m.get('a'), m.get('n', raw)] }
p('flush delay') { m.set('fd', 'v'); m.flush(100); m.get('fd') }
p('close') { m.close; m.get('fd') }
