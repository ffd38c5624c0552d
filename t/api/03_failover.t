# Choosing accounts and failing over: retry on connection errors,
# timeouts, 429 and 5xx, each account at most once; relay the client's own
# errors unchanged; answer 502/503/504 when every attempt failed.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use TB::Test;

plan tests => 32;

my $msgs = [ { role => 'user', content => 'hi' } ];
sub ask { chat(KEY_DEFAULT, { model => $_[0], messages => $msgs }, @_[1 .. $#_]) }
sub count { scalar @{ mock_requests($_[0]) } }

# ---- 500 on the first account → the next one -----------------------------------------
mock_reset();
mock_script('primary', { status => 500, body => { error => { message => 'boom', type => 'server_error' } } });
my $r = ask('gpt-4o-mini');
is($r->code, 200, '500 from primary: the client still gets 200');
is(json_of($r)->{choices}[0]{message}{content}, 'Hello from backup', '500 from primary: backup answered');
is(count('primary'), 1, 'primary tried once');
is(count('backup'), 1, 'backup tried once');
is(mock_requests('backup')->[-1]{json}{model}, 'gpt-4o-mini', 'backup gets its own model name');
is(mock_requests('backup')->[-1]{headers}{authorization}, 'Bearer sk-backup-secret-bbbb2222', 'backup gets its own credential');

# ---- connection refused → the next one ----------------------------------------------
mock_reset();
$r = ask('flaky-model');
is($r->code, 200, 'refused connection: 200 from the next account');
is(json_of($r)->{choices}[0]{message}{content}, 'Hello from backup', 'refused connection: backup answered');

# ---- connection closed without an answer → the next one -----------------------------
mock_reset();
# NB: twice: on a reused keep-alive connection curl itself retries once on a
# fresh one when the server closes without a byte, as it should
mock_script('primary', { close => JSON::PP::true }, { close => JSON::PP::true });
$r = ask('gpt-4o-mini');
is($r->code, 200, 'upstream closed without answering: 200 from the next account');
is(count('backup'), 1, 'closed connection: backup used');

# ---- 429 from an account is that account's problem ----------------------------------
# (401/403 mark an account error: t/api/16_scheduling.t, on an account of its own)
mock_reset();
mock_script('primary', { status => 429, headers => { 'Retry-After' => '7' }, body => { error => { message => 'slow down' } } });
is(ask('gpt-4o-mini')->code, 200, '429 from primary: served by backup');

# ---- the client's own error is relayed unchanged, not retried -----------------------------
mock_reset();
my $err400 = '{"error":{"message":"Invalid value for \'temperature\'","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}';
mock_script('primary', { status => 400, body => $err400 });
$r = ask('gpt-4o-mini');
is($r->code, 400, '400 from upstream: relayed');
is($r->content, $err400, '400 from upstream: body unchanged');
like($r->header('Content-Type'), qr{^application/json}, '400 from upstream: content type kept');
is(count('backup'), 0, '400 from upstream: no other account tried');

# ---- every account fails ---------------------------------------------------------------
mock_reset();
mock_script('doom-a', { status => 500 });
mock_script('doom-b', { status => 503 });
$r = ask('doomed-model');
my $e = error_is($r, 502, 'upstream_error', 'all accounts 5xx: 502');
like($e->{message}, qr/2 attempts/, '502 says how many attempts');
is(count('doom-a') + count('doom-b'), 2, 'each account tried exactly once');
unlike($r->content, qr/sk-doom/, 'no credential in the error');

mock_reset();
mock_script('doom-a', { status => 429, headers => { 'Retry-After' => '9' } });
mock_script('doom-b', { status => 429, headers => { 'Retry-After' => '4' } });
$r = ask('doomed-model');
error_is($r, 503, 'upstream_rate_limited', 'all accounts 429: 503');
is($r->header('Retry-After'), '4', '503 carries the shortest Retry-After seen');

mock_reset();
mock_script('doom-a', { status => 500 });
mock_script('doom-b', { status => 429, headers => { 'Retry-After' => '4' } });
$r = ask('doomed-model');
error_is($r, 502, 'upstream_error', 'a 500 then a 429: 502, not "all rate limited"');
ok(!defined $r->header('Retry-After'), '...and no Retry-After');

# ---- timeouts (TokenBayTimeout 700ms under /fast) -------------------------------------------
mock_reset();
mock_script('primary', { delay => 3 });
$r = ask('slow-model', path => '/fast/v1/chat/completions');
error_is($r, 504, 'upstream_timeout', 'upstream too slow: 504');

mock_reset();
mock_script('primary', { delay => 3 });
$r = ask('gpt-4o-mini', path => '/fast/v1/chat/completions');
is($r->code, 200, 'timeout on primary: backup answers');
is(json_of($r)->{choices}[0]{message}{content}, 'Hello from backup', 'timeout on primary: backup content');

# ---- TokenBayMaxAttempts bounds the attempts ---------------------------------------------
mock_reset();
mock_script('primary', { status => 500 });
$r = ask('gpt-4o-mini', path => '/single/v1/chat/completions');
error_is($r, 502, 'upstream_error', 'one attempt allowed: 502 after the first failure');
is(count('backup'), 0, 'one attempt allowed: backup untouched');

# ---- upstream that answers garbage is still relayed, with its status ----------------
mock_reset();
mock_script('primary', { status => 200, body => 'not json at all', content_type => 'text/plain' });
$r = ask('gpt-4o-mini');
is($r->code, 200, 'non-JSON 200 relayed as is');
is($r->content, 'not json at all', 'non-JSON body relayed as is');

# ---- the log names what happened -------------------------------------------------------
{
    open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or die $!;
    my $log = do { local $/; <$fh> };
    like($log, qr/TB42: account primary answered HTTP 500/, 'error log: failed attempt named by account');
    unlike($log, qr/sk-(primary|backup|doom)/, 'error log: no credentials');
}
