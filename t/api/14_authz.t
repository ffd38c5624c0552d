# Gateway keys in httpd's auth phase: AuthType tokenbay, Require
# valid-user / tokenbay-group / tokenbay-key combined with httpd's own
# Require rules, and every refusal answered as an OpenAI error (JSON), not
# an HTML page. The locations are in t/conf/extra.conf.in.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest qw(GET);
use Digest::SHA qw(sha1_base64);
use File::Path qw(make_path);
use MIME::Base64 qw(encode_base64);
use TB::Test;

plan tests => 42;

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
mock_reset();

sub ids { my $j = json_of($_[0]) || {}; [ sort map { $_->{id} } @{ $j->{data} || [] } ] }

# ---- /v1: AuthType tokenbay, Require valid-user (the shipped setup) ----------
my $r = chat(undef, $body);
error_is($r, 401, 'missing_api_key', 'no key: 401 missing_api_key, in JSON');
is($r->header('WWW-Authenticate'), 'Bearer realm="tokenbay"', '... with a Bearer challenge');
error_is(chat('tb-no-such-key-000000', $body), 401, 'invalid_api_key', 'unknown key: 401');
error_is(chat(KEY_DISABLED, $body), 401, 'api_key_disabled', 'disabled key: 401');
error_is(chat(KEY_FROZEN, $body), 403, 'group_disabled', 'disabled group: 403');
$r = chat(KEY_DEFAULT, $body);
is($r->code, 200, 'valid key: 200');
like(log_of($r),
     qr/^\S+ tb-test\.\.0001 "POST /, 'r->user is the key display form (access log %u)');
$r = GET('/v1/models');
error_is($r, 401, 'missing_api_key', 'the model list needs a key too');

# ---- /open/v1: TokenBay On, no AuthType, no Require -------------------------
error_is(chat(undef, $body, path => '/open/v1/chat/completions'), 401, 'missing_api_key',
         'no Require at all: a key is still required');
error_is(GET('/open/v1/models'), 401, 'missing_api_key', '... for the model list too');
error_is(chat('tb-wrong-key-000000000', $body, path => '/open/v1/chat/completions'),
         401, 'invalid_api_key', '... and checked');
is(chat(KEY_DEFAULT, $body, path => '/open/v1/chat/completions')->code, 200,
   '... a valid key works');

# ---- /grp/v1: Require tokenbay-group default -----------------------------------
is(chat(KEY_DEFAULT, $body, path => '/grp/v1/chat/completions')->code, 200,
   'Require tokenbay-group: a key of the group passes');
$r = chat(KEY_OTHER, $body, path => '/grp/v1/chat/completions');
my $e = error_is($r, 403, 'permission_denied', 'a key of another group: 403 permission_denied');
like($e->{message} // '', qr/not allowed/, '... saying the key is not allowed here');
ok(!$r->header('WWW-Authenticate'), '... without a challenge (the key was fine)');
error_is(chat(undef, $body, path => '/grp/v1/chat/completions'), 401, 'missing_api_key',
         'no key: still 401 missing_api_key');
error_is(chat(KEY_DISABLED, $body, path => '/grp/v1/chat/completions'), 401,
         'api_key_disabled', 'a disabled key of the group: 401 api_key_disabled');

# ---- /named/v1: Require tokenbay-key test-other, or tokenbay-group restricted -
is(chat(KEY_OTHER, $body, path => '/named/v1/chat/completions')->code, 200,
   'Require tokenbay-key: the named key passes');
is(chat(KEY_RESTRICTED, $body, path => '/named/v1/chat/completions')->code, 200,
   '... and so does a key of the other allowed group (RequireAny)');
error_is(chat(KEY_DEFAULT, $body, path => '/named/v1/chat/completions'), 403,
         'permission_denied', '... any other key: 403');

# ---- /office/v1: TokenBayPublicModels, Require ip or valid-user ----------------
$r = GET('/office/v1/models');
is($r->code, 200, 'public model list: 200 without a key from the allowed network');
my $all = ids($r);
ok((grep { $_ eq 'gpt-4o' } @$all) && (grep { $_ eq 'other-model' } @$all),
   '... listing the models of every group (@$all)');
is_deeply(ids(get_models(KEY_RESTRICTED, path => '/office/v1/models')),
          [ 'gpt-4o-mini', 'gpt-mini', 'mini' ],
          '... but a presented key still gets its own list');
error_is(get_models('tb-wrong-key-000000000', path => '/office/v1/models'), 401,
         'invalid_api_key', '... and a wrong key is refused, not ignored');
error_is(chat(undef, $body, path => '/office/v1/chat/completions'), 401, 'missing_api_key',
         'public model list: requests for completions still need a key');
is(chat(KEY_DEFAULT, $body, path => '/office/v1/chat/completions')->code, 200,
   '... and work with one');

# ---- /far/v1: RequireAll valid-user and an address we are not at --------------
$r = chat(KEY_DEFAULT, $body, path => '/far/v1/chat/completions');
error_is($r, 403, 'permission_denied', 'Require ip refuses a valid key: 403 in JSON');
unlike($r->content, qr/<html|<!DOCTYPE/i, '... not an HTML page');

# ---- /keyed: AuthType tokenbay on something that is not the gateway -----------
my $dir = Apache::Test::vars('documentroot') . '/keyed';
make_path($dir);
chmod 0755, $dir;
open my $fh, '>', "$dir/hello.txt" or die $!;
print $fh "hello\n";
close $fh;
chmod 0644, "$dir/hello.txt";
$r = GET('/keyed/hello.txt', Authorization => 'Bearer ' . KEY_DEFAULT);
is($r->code . ' ' . $r->content, "200 hello\n", 'gateway keys guard a static file');
error_is(GET('/keyed/hello.txt'), 401, 'missing_api_key', '... no key: 401 JSON');
error_is(GET('/keyed/hello.txt', Authorization => 'Bearer ' . KEY_OTHER), 403,
         'permission_denied', '... a key of another group: 403 JSON');
error_is(GET('/keyed/nothing.txt', Authorization => 'Bearer ' . KEY_DEFAULT), 404,
         'unknown_url', "... httpd's own 404 there is JSON too");

# ---- the other key header -------------------------------------------------------
$r = chat_raw($body, headers => { 'x-api-key' => KEY_DEFAULT });
is($r->code, 200, 'x-api-key is accepted in the auth phase too');
error_is(chat_raw($body, headers => { Authorization => 'Basic dXNlcjpwYXNz' }), 401,
         'invalid_api_key', 'a Basic credential is not a key: 401');

# ---- Codex's websocket probe needs a key first ---------------------------------
error_is(GET('/v1/responses', Upgrade => 'websocket', Connection => 'Upgrade'), 401,
         'missing_api_key', 'websocket upgrade without a key: 401, not 426');

# ---- another AuthType (Basic) on the gateway: the handler checks the key ---------
{
    my $file = Apache::Test::vars('serverroot') . '/htpasswd-basic';
    open my $pw, '>', $file or die "$file: $!";
    print $pw 'alice:{SHA}' . sha1_base64('wonderland') . "=\n";
    close $pw;
    chmod 0644, $file;
}
my %alice = (Authorization => 'Basic ' . encode_base64('alice:wonderland', ''));
$r = chat_raw($body, path => '/basic/v1/chat/completions',
              headers => { %alice, 'x-api-key' => KEY_DEFAULT });
is($r->code, 200, 'AuthType Basic: Basic credentials plus a key in x-api-key work');
error_is(chat_raw($body, path => '/basic/v1/chat/completions', headers => { %alice }),
         401, 'invalid_api_key', '... Basic alone is not a key: 401');
$r = chat_raw($body, path => '/basic/v1/chat/completions',
              headers => { %alice, 'x-api-key' => 'tb-no-such-key-000000' });
error_is($r, 401, 'invalid_api_key', '... a wrong key next to valid Basic credentials: 401');
$r = GET('/basic/v1/models', %alice);
error_is($r, 401, 'invalid_api_key', '... the model list too (TokenBayPublicModels is Off)');
$r = chat_raw($body, path => '/basic/v1/chat/completions');
is($r->code, 401, 'no Basic credentials: 401 from mod_auth_basic');
like(join(' ', $r->header('WWW-Authenticate')), qr/^Basic realm="gateway behind Basic"$/,
     '... with its own challenge only, no Bearer one');
