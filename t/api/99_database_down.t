# The database goes away: keys this process has seen and the last
# catalogue keep serving past their TTLs (up to TokenBayKeyStaleTTL, 8 s
# here), unknown keys get a quick 503 without a connection attempt each,
# a flood of random keys before the outage evicted no working key, and
# everything recovers when the database is back. (Runs last: it stops
# and restarts MariaDB.)
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes qw(sleep time);
use TB::Test;

plan tests => 22;

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
mock_reset();

# Caches are per process: one keep-alive connection keeps us in one child
# (KeepAliveTimeout is 30 s in the test config). httpd closes the
# connection after a 503, so requests expected to get one go on
# connections of their own (to any child).
Apache::TestRequest::user_agent(reset => 1, keep_alive => 1);
my $other = LWP::UserAgent->new(keep_alive => 0, timeout => 30);
my $base = 'http://' . Apache::TestRequest::hostport();
sub chat_other {
    my ($key) = @_;
    return $other->post("$base/v1/chat/completions",
                        'Content-Type' => 'application/json',
                        Authorization => "Bearer $key",
                        Content => JSON::PP::encode_json($body));
}

my $errlog = Apache::Test::vars('t_logs') . '/error_log';
sub log_size { -s $errlog }
sub log_since {
    my ($from) = @_;
    open my $fh, '<', $errlog or die $!;
    seek $fh, $from, 0;
    local $/;
    return <$fh> // '';
}

is(chat(KEY_DEFAULT, $body)->code, 200, 'warm: key and catalogue cached');

# 200 random keys (the cache holds 50 known and 50 unknown keys here)
my $refused = 0;
for my $i (1 .. 200) {
    $refused++ if chat(sprintf('tb-flood-%016d', $i), $body)->code == 401;
}
is($refused, 200, 'a flood of 200 random keys: all refused');

my $down_at = time;
my $mark = log_size();
db_ctl('stop');

my $r = chat(KEY_DEFAULT, $body);
is($r->code, 200, 'database down: the key used before the flood still works (not evicted)')
    or diag($r->code . ' ' . $r->content);

$r = chat_other(KEY_DBDOWN);
my $e = error_is($r, 503, 'database_unavailable', 'database down: a key never seen gets 503');
like($r->header('Retry-After') // '', qr/^[1-9]\d*$/, '... with Retry-After');

my $quick = 0;
for my $i (1 .. 30) {
    $quick++ if chat_other(sprintf('tb-outage-%015d', $i))->code == 503;
}
is($quick, 30, '30 more unknown keys during the outage: 503 each');
my (%attempts, $since);
$since = log_since($mark);
$attempts{$1}++ while $since =~ /\[pid (\d+)[^\]]*\] [^\n]*AH00629/g;
my $total = 0;
$total += $_ for values %attempts;
ok($total < 16 && !grep({ $_ > 3 } values %attempts),
   '... without a connection attempt per request (' . $total
   . ' attempts in ' . scalar(keys %attempts) . ' processes for 31 requests:'
   . ' the back-off is shared by the threads of a process)');
my %outage;
$since = log_since($mark);
$outage{$1}++ while $since =~ /\[pid (\d+)[^\]]*\] TB13: database unavailable/g;
ok(%outage && !grep({ $_ != 1 } values %outage),
   'the outage is logged once per process (' . join(', ', values %outage) . ')');

# past both TTLs (2 s): the catalogue cannot be refreshed, the key cannot
# be confirmed; both are served stale
sleep 2.5;
$r = chat(KEY_DEFAULT, $body);
is($r->code, 200, 'past the key and catalogue TTLs: the cached key still works');
is(json_of($r)->{choices}[0]{message}{content}, 'Hello from primary',
   '... routed by the stale catalogue');
like(log_since($mark), qr/TB20: catalogue refresh failed; serving the one loaded \d+s ago/,
     'the failed catalogue refresh is logged');
is(get_models(KEY_DEFAULT)->code, 200, 'the model list is served from the stale catalogue');
error_is($other->get("$base/v1/models", Authorization => 'Bearer ' . KEY_DBDOWN),
         503, 'database_unavailable',
         'an unknown key still gets a clean 503: the server is alive');

# past TokenBayKeyStaleTTL (8 s after the key was last confirmed)
my $left = $down_at + 8.5 - time;
sleep $left if $left > 0;
error_is(chat(KEY_DEFAULT, $body), 503, 'database_unavailable',
         'past TokenBayKeyStaleTTL the key is no longer taken on trust: 503');

db_ctl('start');
my $ok = 0;
for (1 .. 40) {
    $r = chat(KEY_DBDOWN, $body);
    if ($r->code == 200) { $ok = 1; last }
    sleep 0.5;
}
ok($ok, 'database back: the unknown key works');
is(chat(KEY_DEFAULT, $body)->code, 200, 'database back: the old key works again');
like(log_since($mark), qr/TB14: database reachable again after \d+s/, 'the recovery is logged');
is(get_models(KEY_DEFAULT)->code, 200, 'database back: catalogue refreshes');

# a change made now takes effect within the TTL
my ($rc) = admin('key', 'disable', '--key', KEY_DBDOWN);
is($rc, 0, 'key disabled in the database');
sleep 2.5;
error_is(chat(KEY_DBDOWN, $body), 401, 'api_key_disabled',
         'database back: disabling a key takes effect within the TTL');
admin('key', 'enable', '--key', KEY_DBDOWN);

# a quick restart: connections pooled through it must not poison the
# queries after it (DBDParams reconnect=0)
my $fresh = 'tb-test-after-restart-0012';
($rc) = admin('key', 'add', '--group', 'default', '--name', 'after-restart', '--key', $fresh);
is($rc, 0, 'a key created before the restart');
db_ctl('stop');
db_ctl('start');
my $served = 0;
for (1 .. 20) {
    if (chat_other($fresh)->code == 200) { $served = 1; last }
    sleep 0.5;
}
ok($served, 'after a quick database restart a key never seen before works');
