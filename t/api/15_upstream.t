# What comes back from upstreams is bounded, what goes to them cannot be
# forged, and idle connections to them do not linger: oversized answers
# and events, a credential with a line break, connections the upstream
# closed (CLOSE-WAIT) or left idle past TokenBayUpstreamKeepAlive (3 s in
# the test config).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use HTTP::Tiny;
use JSON::PP ();
use Time::HiRes qw(sleep);
use TB::Test;

plan tests => 16;

my $msgs = [ { role => 'user', content => 'hi' } ];
my $body = { model => 'gpt-4o-mini', messages => $msgs };
my %stream = (%$body, stream => JSON::PP::true);
my $MOCK = 'http://127.0.0.1:' . ($ENV{TB_MOCK_PORT} || 18080);
mock_reset();

# ---- a buffered answer over TokenBayMaxResponseSize (4K under /small) ----
mock_script('primary', { text => 'x' x 10000 });
my $r = chat(KEY_DEFAULT, $body, path => '/small/v1/chat/completions');
error_is($r, 502, 'upstream_response_too_large', 'an answer over the limit: 502');
mock_script('primary', { text => 'y' x 1000 });
$r = chat(KEY_DEFAULT, $body, path => '/small/v1/chat/completions');
is($r->code, 200, 'an answer under the limit: 200');

# ---- a stream event over the 4 MB event limit -------------------------------
my $huge = 'z' x (5 * 1024 * 1024);
my $ROLE = { data => { id => 'c', object => 'chat.completion.chunk', created => 1, model => 'm',
                       choices => [ { index => 0, delta => { role => 'assistant' } } ] } };
mock_script('primary', { sse => [ $ROLE, chunk($huge) ] });
$r = chat(KEY_DEFAULT, \%stream);
error_is($r, 502, 'upstream_response_too_large',
         'a 5 MB event before any content: 502, nothing streamed');

mock_script('primary', { sse => [ $ROLE, chunk('Hello'), chunk($huge),
                                  { data => '[DONE]' } ] });
my $s = stream_all(stream_open(KEY_DEFAULT, \%stream));
my @ev = stream_events($s->{buf});
is($ev[1] && $ev[1]{choices}[0]{delta}{content}, 'Hello', 'after the first content: it was streamed');
is(ref $ev[-1] eq 'HASH' && $ev[-1]{error}{code}, 'upstream_response_too_large',
   '... and a 5 MB event ends the stream with an error chunk saying why');
like(log_of($s), qr/outcome=interrupted .*stream=1/, '... recorded as interrupted');

# ---- a credential with a line break -----------------------------------------
admin('model', 'add', 'crlf-model', '--owned-by', 'tokenbay');
local $ENV{TB_CRLF_PLACEHOLDER} = 'sk-placeholder-0000';
my ($rc) = admin('account', 'add', 'crlf', '--base-url', "$MOCK/a/crlf/v1",
                 '--credential-env', 'TB_CRLF_PLACEHOLDER', '--groups', 'default',
                 '--models', 'crlf-model');
is($rc, 0, 'an account for the model');
system("$ENV{TB_ROOT}/scripts/db.sh", 'sql', '-e',
       "UPDATE tb_accounts SET credential = CONCAT('sk-crlf', CHAR(13), CHAR(10),"
       . " 'X-Injected: 1') WHERE name = 'crlf'") == 0 or die 'sql failed';
sleep 2.5;   # the catalogue TTL
error_is(chat(KEY_DEFAULT, { model => 'crlf-model', messages => $msgs }), 503,
         'no_available_account', 'an account whose credential holds CR LF is never used');
is(scalar @{ mock_requests('crlf') }, 0, '... nothing was sent to it');
open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or die $!;
my $log = do { local $/; <$fh> };
like($log, qr/TB23: account crlf is not scheduled: its credential contains control characters/,
     '... and the error log says why');
unlike($log, qr/sk-crlf/, '... without the credential');

# ---- connections the upstream closed, or left idle ------------------------------
# sockets of httpd's children (user nobody) to the mock, by TCP state
my $nobody = getpwnam('nobody');
sub upstream_sockets {
    my ($state) = @_;   # 01 ESTABLISHED, 08 CLOSE_WAIT
    my $port = sprintf '%04X', $ENV{TB_MOCK_PORT} || 18080;
    my $n = 0;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $t, '<', $f or next;
        while (<$t>) {
            my @c = split;
            next unless @c > 7 && $c[2] =~ /:$port$/ && $c[3] eq $state && $c[7] == $nobody;
            $n++;
        }
    }
    return $n;
}
is(chat(KEY_DEFAULT, $body)->code, 200, 'a request leaves a kept-alive upstream connection');
ok(upstream_sockets('01') >= 1, '... httpd holds it (' . upstream_sockets('01') . ')');
my $closed = HTTP::Tiny->new->post("$MOCK/__mock/close_idle")->{content} // '';
sleep 1.5;   # the keeper looks every half second here
is(upstream_sockets('08'), 0,
   "the upstream closed its idle connections ($closed): none left in CLOSE-WAIT");
is(chat(KEY_DEFAULT, $body)->code, 200, '... and the next request gets a new one');
sleep 4.5;
is(upstream_sockets('01'), 0, 'idle past TokenBayUpstreamKeepAlive: closed by the gateway');
