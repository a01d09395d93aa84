require 'dalli'
require 'logger'
Dalli.logger = Logger.new($stderr); Dalli.logger.level = Logger::FATAL
PORT = ENV['PORT']
def p(n)
  v = begin
    yield
  rescue StandardError => e
    "raises #{e.class}: #{e.message.gsub(PORT, 'PORT')}"
  end
  puts "#{n}: #{v.inspect}"
  $stdout.flush
end
good = Dalli::Client.new("127.0.0.1:#{PORT}", username: 'testuser', password: 's3cret', socket_timeout: 5, socket_max_failures: 1, down_retry_delay: 0)
p('auth set') { good.set('a', 'v') ? 'ok' : 'fail' }
p('auth get') { good.get('a') }
p('auth incr') { good.incr('n', 1, nil, 5) }
p('auth stats') { s = good.stats.values.first; s && [s['auth_cmds'], s['auth_errors']] }
bad = Dalli::Client.new("127.0.0.1:#{PORT}", username: 'testuser', password: 'nope', socket_timeout: 5, socket_max_failures: 1, down_retry_delay: 0)
p('bad password get') { bad.get('a') }
none = Dalli::Client.new("127.0.0.1:#{PORT}", socket_timeout: 5, socket_max_failures: 1, down_retry_delay: 0)
p('no credentials get') { none.get('a') }
p('auth stats after') { s = good.stats.values.first; s && [s['auth_cmds'], s['auth_errors']] }
