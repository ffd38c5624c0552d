# .htaccess (AllowOverride FileInfo AuthConfig) may turn the gateway on,
# tune it and restrict it per directory; server-wide directives (database
# settings among them) are refused there.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Path qw(make_path);
use TB::Test;

plan tests => 10;

my $dir = Apache::Test::vars('documentroot') . '/htaccess';
make_path($dir);
chmod 0755, $dir;
sub htaccess {
    open my $fh, '>', "$dir/.htaccess" or die $!;
    print $fh @_;
    close $fh;
    chmod 0644, "$dir/.htaccess";
}

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
mock_reset();

htaccess("TokenBay On\nTokenBayMaxAttempts 2\nTokenBayMaxBodySize 1M\nTokenBayTimeout 30\n");
my $r = chat(KEY_DEFAULT, $body, path => '/htaccess/chat/completions');
is($r->code, 200, 'gateway enabled from .htaccess');

htaccess("TokenBay On\nTokenBayKeyCacheTTL 5\n");
$r = chat(KEY_DEFAULT, $body, path => '/htaccess/chat/completions');
is($r->code, 500, 'server-wide directive in .htaccess: refused (500)');
open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or die $!;
my $log = do { local $/; <$fh> };
like($log, qr/TokenBayKeyCacheTTL not allowed here/, 'httpd says why');

# access rules from .htaccess (AuthConfig)
htaccess("TokenBay On\nAuthType tokenbay\nRequire tokenbay-group restricted\n");
$r = chat(KEY_RESTRICTED, $body, path => '/htaccess/chat/completions');
is($r->code, 200, '.htaccess Require tokenbay-group: a key of the group passes');
error_is(chat(KEY_DEFAULT, $body, path => '/htaccess/chat/completions'), 403,
         'permission_denied', '... another key: 403 in JSON');
error_is(chat(undef, $body, path => '/htaccess/chat/completions'), 401,
         'missing_api_key', '... no key: 401 in JSON');

htaccess("TokenBay On\nTokenBayPublicModels On\n");
is(get_models(undef, path => '/htaccess/models')->code, 200,
   '.htaccess may make the model list public');

# nothing there reaches the database or credentials
for my $d ('DBDParams "host=127.0.0.1 user=evil"', 'TokenBayUpstreamKeepAlive 5',
           'TokenBayKeyStaleTTL 1') {
    htaccess("TokenBay On\n$d\n");
    my ($name) = $d =~ /^(\S+)/;
    is(chat(KEY_DEFAULT, $body, path => '/htaccess/chat/completions')->code, 500,
       "$name in .htaccess: refused (500)");
}
unlink "$dir/.htaccess";
