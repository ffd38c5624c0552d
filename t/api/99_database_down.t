# The database goes away: cached keys and the last catalogue keep serving,
# uncached keys get a clear 503, httpd keeps serving, and it all recovers
# when the database is back. (Runs last: it stops and restarts MariaDB.)
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Time::HiRes qw(sleep);
use TB::Test;

plan tests => 7;

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
mock_reset();

# caches are per process: one keep-alive connection keeps us in one child
Apache::TestRequest::user_agent(reset => 1, keep_alive => 1);

is(chat(KEY_DEFAULT, $body)->code, 200, 'warm: key and catalogue cached');
db_ctl('stop');
my $r = chat(KEY_DEFAULT, $body);
is($r->code, 200, 'database down: a cached key still works');

$r = chat(KEY_DBDOWN, $body);
my $e = error_is($r, 503, 'database_unavailable', 'database down: uncached key gets 503');
is($r->header('Retry-After'), '1', '503 says when to retry');

sleep 2.5;  # past every TTL: the catalogue is stale now
$r = get_models(KEY_DBDOWN);
is($r->code, 503, 'database down: still a clean 503, the server is alive');

db_ctl('start');
my $ok = 0;
for (1 .. 20) {
    $r = chat(KEY_DBDOWN, $body);
    if ($r->code == 200) { $ok = 1; last }
    sleep 0.5;
}
ok($ok, 'database back: the same key works');
is(get_models(KEY_DEFAULT)->code, 200, 'database back: catalogue refreshes');
