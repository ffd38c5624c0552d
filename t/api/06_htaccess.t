# .htaccess (AllowOverride FileInfo) may turn the gateway on and tune it
# per directory; server-wide directives are refused there.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Path qw(make_path);
use TB::Test;

plan tests => 3;

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
unlink "$dir/.htaccess";
