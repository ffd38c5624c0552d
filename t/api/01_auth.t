# Gateway keys: where they come from, and every way they are refused.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use TB::Test;

plan tests => 20;

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };

mock_reset();

my $r = chat(undef, $body);
my $e = error_is($r, 401, 'missing_api_key', 'no key: 401 missing_api_key');
like($r->header('WWW-Authenticate') // '', qr/^Bearer realm="tokenbay"$/, 'no key: WWW-Authenticate Bearer');

$r = chat('tb-no-such-key-at-all-000', $body);
$e = error_is($r, 401, 'invalid_api_key', 'unknown key: 401 invalid_api_key');
like($r->header('WWW-Authenticate') // '', qr/error="invalid_token"/, 'unknown key: invalid_token challenge');
unlike($r->content, qr/tb-no-such-key-at-all-000/, 'unknown key is not echoed back whole');

$r = chat_raw($body, headers => { Authorization => 'Basic dXNlcjpwYXNz' });
error_is($r, 401, 'invalid_api_key', 'non-bearer Authorization: 401');

$r = chat(KEY_DISABLED, $body);
error_is($r, 401, 'api_key_disabled', 'disabled key: 401 api_key_disabled');

$r = chat(KEY_EXPIRED, $body);
error_is($r, 401, 'api_key_expired', 'expired key: 401 api_key_expired');

$r = chat(KEY_FROZEN, $body);
error_is($r, 403, 'group_disabled', 'key of a disabled group: 403 group_disabled');

$r = chat(KEY_DEFAULT, $body);
is($r->code, 200, 'valid key by Authorization: Bearer: 200');

$r = chat_raw($body, headers => { 'x-api-key' => KEY_DEFAULT });
is($r->code, 200, 'valid key by x-api-key: 200');

$r = chat_raw($body, headers => { Authorization => 'bearer   ' . KEY_DEFAULT });
is($r->code, 200, 'scheme is case-insensitive and extra blanks are fine');

# the key must never reach the upstream, only the account's credential
my $reqs = mock_requests('primary');
ok(scalar @$reqs >= 1, 'the upstream was called');
my $fwd = $reqs->[-1]{headers};
is($fwd->{authorization}, 'Bearer sk-primary-secret-aaaa1111', 'upstream gets the account credential');
ok(!grep({ defined && /tb-test-default-key/ } values %$fwd), 'gateway key is not forwarded in any header');
ok(!exists $fwd->{'x-api-key'}, 'x-api-key is not forwarded');

# no key or credential in the logs
my $logdir = Apache::Test::vars('t_logs');
my $logs = '';
for my $f ("$logdir/error_log", "$logdir/access_log", "$logdir/tokenbay_log") {
    open my $fh, '<', $f or next;
    local $/;
    $logs .= <$fh>;
}
unlike($logs, qr/tb-test-default-key-0001/, 'no gateway key in any log');
unlike($logs, qr/sk-primary-secret-aaaa1111/, 'no upstream credential in any log');
like($logs, qr/tb-test\.\.0001/, 'access log names the key by its display form');

# the request id header is on successes too
$r = chat(KEY_DEFAULT, $body);
like($r->header('x-request-id') // '', qr/^\S{8,}$/, 'x-request-id on a success');
