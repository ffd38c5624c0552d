# "stream": true on /v1/chat/completions: events flow through as they come,
# nothing is committed before real content, failover before the commit,
# clean endings after it, and the upstream is dropped when the client goes.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use Time::HiRes qw(time sleep);
use TB::Test;

plan tests => 68;

my $msgs = [ { role => 'user', content => 'hi' } ];
my %req = (model => 'gpt-4o-mini', messages => $msgs, stream => JSON::PP::true);
my $ROLE = { data => { id => 'c', object => 'chat.completion.chunk', created => 1, model => 'm',
             choices => [ { index => 0, delta => { role => 'assistant', content => '' }, finish_reason => undef } ] } };
my $DONE = { data => '[DONE]' };
sub contents { join '', map { ref $_ eq 'HASH' ? ($_->{choices}[0]{delta}{content} // '') : '' } @_ }
sub count { scalar @{ mock_requests($_[0]) } }
# Wait (up to 3 s) for the mock to see the gateway drop `account`'s connection.
sub wait_client_closed {
    my ($account) = @_;
    for (1 .. 30) {
        my ($seen) = grep { $_->{type} eq 'client_closed' } @{ mock_events($account) };
        return $seen if $seen;
        sleep 0.1;
    }
    return undef;
}

# ---- the default stream ---------------------------------------------------------
mock_reset();
mock_script('primary', { sse_default => JSON::PP::true });
my $s = stream_all(stream_open(KEY_DEFAULT, { %req }));
like($s->{head}, qr{^HTTP/1\.\d 200}, 'stream: 200');
like($s->{head}, qr{^Content-Type: text/event-stream}mi, 'stream: text/event-stream');
like($s->{head}, qr{^Cache-Control: no-cache}mi, 'stream: Cache-Control no-cache');
unlike($s->{head}, qr{^Content-Length}mi, 'stream: no Content-Length');
like($s->{head}, qr{^x-request-id: \S+}mi, 'stream: x-request-id');
my @ev = stream_events($s->{buf});
is($ev[0]{choices}[0]{delta}{role}, 'assistant', 'first event carries the role');
is(contents(@ev), 'Hello from primary', 'all content arrives');
is($ev[-1], '[DONE]', 'ends with [DONE]');
ok(!grep({ ref $_ && ref $_->{usage} eq 'HASH' } @ev), 'no usage chunk when the client did not ask');
my $up = mock_requests('primary')->[-1]{json};
ok($up->{stream_options}{include_usage}, 'gateway asked the upstream for usage anyway');
is($up->{model}, 'gpt-4o-mini-2024-07-18', 'stream: model renamed upstream');
like(log_of($s), qr{account=primary .*outcome=ok .*tokens=5/7/12}, 'hidden usage still recorded');

# ---- include_usage requested ----------------------------------------------------
mock_reset();
mock_script('primary', { sse_default => JSON::PP::true });
$s = stream_all(stream_open(KEY_DEFAULT, { %req, stream_options => { include_usage => JSON::PP::true } }));
@ev = stream_events($s->{buf});
my ($u) = grep { ref $_ && ref $_->{usage} eq 'HASH' } @ev;
ok($u, 'usage chunk passed on when asked for');
is_deeply($u->{choices}, [], 'usage chunk has empty choices');
is($u->{usage}{total_tokens}, 12, 'usage chunk totals');
is($ev[-1], '[DONE]', 'then [DONE]');

# stream_options is edited in place: other options and numbers survive
mock_reset();
my $raw = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,'
        . '"stream_options":{"include_usage":false,"x_big":1e400,"x_int":123456789012345678901234567890}}';
$s = stream_all(stream_open(KEY_DEFAULT, $raw));
like($s->{head}, qr/ 200 /, 'stream_options with numbers jansson cannot hold: 200');
my $fwd = mock_requests('primary')->[-1]{body};
like($fwd, qr/"include_usage":true,"x_big":1e400,"x_int":123456789012345678901234567890\}/,
     'include_usage switched on, the rest of stream_options byte for byte');
ok(!grep({ ref $_ && ref $_->{usage} eq 'HASH' } stream_events($s->{buf})), 'client asked for no usage: none sent');
mock_reset();
$s = stream_all(stream_open(KEY_DEFAULT, { %req, stream_options => {} }));
like($s->{head}, qr/ 200 /, 'empty stream_options: 200');
is_deeply(mock_requests('primary')->[-1]{json}{stream_options}, { include_usage => JSON::PP::true },
          'empty stream_options: include_usage added');

# a finished stream ends for the client even if the upstream lingers
mock_reset();
mock_script('primary', { sse => [ $ROLE, chunk('done soon'), chunk(undef, finish => 'stop'), $DONE ], hang => 10 });
my $t1 = time;
$s = stream_all(stream_open(KEY_DEFAULT, { %req }), 15);
cmp_ok(time - $t1, '<', 5, '[DONE] ends the client\'s response although the upstream keeps its open');
like(log_of($s), qr/account=primary .*outcome=ok/, 'and the outcome is ok');

# ---- events arrive as they are produced -----------------------------------------------
mock_reset();
mock_script('primary', { sse => [ $ROLE, chunk('first'), { %{ chunk(' second') }, delay => 1.5 },
                                  { %{ chunk(undef, finish => 'stop') }, delay => 1.5 }, $DONE ] });
my $t0 = time;
$s = stream_open(KEY_DEFAULT, { %req });
stream_read($s, sub { $_[0] =~ /first/ }, 10);
my $t_first = time - $t0;
ok($s->{buf} =~ /first/ && $s->{buf} !~ /second/, 'first content arrived before the upstream sent the rest');
cmp_ok($t_first, '<', 1.2, 'first content was not held back for the slow events');
stream_all($s);
cmp_ok(time - $t0, '>', 2.5, 'the whole stream took the upstream\'s time');
is(contents(stream_events($s->{buf})), 'first second', 'slow stream: all content');
like(log_of($s), qr/account=primary .*outcome=ok/, 'slow stream: outcome ok');

# ---- the parser takes what real upstreams send ---------------------------------------------
mock_reset();
my $c1 = JSON::PP->new->encode(chunk('A')->{data});
my $c2 = JSON::PP->new->encode(chunk('B')->{data});
my $c3 = JSON::PP->new->encode(chunk('C')->{data});
my $c4 = JSON::PP->new->encode(chunk('D')->{data});
my $c5 = JSON::PP->new->encode(chunk(undef, finish => 'stop')->{data});
mock_script('primary', { sse => [
    { raw => ": keepalive\n\n" },
    { raw => "data: " . substr($c1, 0, 20) },                       # an event split across reads
    { raw => substr($c1, 20) . "\n\n", delay => 0.2 },
    { raw => "data: $c2\n\ndata:$c3\n\n" },                         # two in one read; no space after data:
    { raw => ": ping\r\n\r\ndata: $c4\r\n\r\n" },                   # CRLF
    { raw => "data: $c5\n\ndata: [DONE]" },                         # no final blank line
] });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
@ev = stream_events($s->{buf});
is(contents(@ev), 'ABCD', 'split, merged, spaceless and CRLF events all delivered in order');
is($ev[-1], '[DONE]', 'a last event without its blank line still arrives');
unlike($s->{buf}, qr/keepalive/, 'a keepalive before content is not sent (nothing committed yet)');
like($s->{buf}, qr/^:\s?ping$/m, 'a keepalive after the commit is passed on');
like($s->{buf}, qr/^data: \{/m, 'events are normalised to "data: " with a space');

# ---- failover before the commit ---------------------------------------------------------
mock_reset();
mock_script('primary', { status => 500, body => { error => { message => 'down' } } });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
like($s->{head}, qr/ 200 /, '500 before streaming: 200 from the next account');
is(contents(stream_events($s->{buf})), 'Hello from backup', '500 before streaming: backup streams');

mock_reset();
$s = stream_all(stream_open(KEY_DEFAULT, { %req, model => 'flaky-model' }));
is(contents(stream_events($s->{buf})), 'Hello from backup', 'refused connection: backup streams');

mock_reset();
mock_script('primary', { sse => [ $ROLE, { data => { id => 'c', object => 'chat.completion.chunk',
    choices => [ { index => 0, delta => {}, finish_reason => undef } ] } }, { raw => ": ping\n\n" } ], abort_after => 3 });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
@ev = stream_events($s->{buf});
is(contents(@ev), 'Hello from backup', 'opening chunks then death: backup streams');
is(scalar(grep { ref $_ && ($_->{choices}[0]{delta}{role} // '') eq 'assistant' } @ev), 1,
   'the dead account\'s opening chunks never reached the client');
is(count('backup'), 1, 'backup used once');

mock_reset();
mock_script('primary', { sse => [ $ROLE, { data => { error => { message => 'overloaded', type => 'server_error' } } } ] });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
is(contents(stream_events($s->{buf})), 'Hello from backup', 'error event before content: backup streams');

mock_reset();
mock_script('primary', { sse => [ $ROLE, { data => { error => { message => 'too long', type => 'invalid_request_error',
    param => 'messages', code => 'context_length_exceeded' } } } ] });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
@ev = stream_events($s->{buf});
ok(ref $ev[-1] eq 'HASH' && ($ev[-1]{error}{code} // '') eq 'context_length_exceeded',
   'the request\'s own error before content: passed to the client');
is(count('backup'), 0, 'the request\'s own error before content: no failover');

mock_reset();
mock_script('primary', { sse => [ $ROLE, $DONE ] });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
is(contents(stream_events($s->{buf})), 'Hello from backup', 'end of stream before content: backup streams');

mock_reset();
mock_script('doom-a', { sse => [ $ROLE ], abort_after => 1 });
mock_script('doom-b', { status => 503 });
$s = stream_all(stream_open(KEY_DEFAULT, { %req, model => 'doomed-model' }));
like($s->{head}, qr/ 502 /, 'every account failed before content: 502');
like($s->{head}, qr{^Content-Type: application/json}mi, 'a plain JSON error, as nothing was committed');
like($s->{buf}, qr/"code":"upstream_error"/, 'OpenAI-shaped error');

mock_reset();
mock_script('primary', { status => 400, body => '{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}' });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
like($s->{head}, qr/ 400 /, 'client error before streaming: 400 relayed');
is(count('backup'), 0, 'client error before streaming: no failover');

# ---- after the commit: never switch, end cleanly with an error chunk ------------------------
mock_reset();
mock_script('primary', { sse => [ $ROLE, chunk('Hel') ], abort_after => 2 });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }));
like($s->{head}, qr/ 200 /, 'mid-stream death: status was already 200');
@ev = stream_events($s->{buf});
is(contents(@ev), 'Hel', 'mid-stream death: the content sent so far');
ok(ref $ev[-1] eq 'HASH' && $ev[-1]{error}{message}, 'mid-stream death: ends with an error chunk');
ok($s->{eof}, 'mid-stream death: the connection is closed cleanly');
is(count('backup'), 0, 'mid-stream death: no second account');
like(log_of($s), qr/account=primary .*outcome=interrupted/, 'mid-stream death: recorded as interrupted');

# ---- timeouts (TokenBayFirstTokenTimeout / TokenBayIdleTimeout 800ms under /stream-fast) ----------
mock_reset();
mock_script('primary', { sse => [ $ROLE ], hang => 3 });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }, path => '/stream-fast/v1/chat/completions'));
is(contents(stream_events($s->{buf})), 'Hello from backup', 'no content before the first-token timeout: backup streams');

mock_reset();
mock_script('primary', { sse => [ $ROLE, chunk('partial') ], hang => 3 });
$s = stream_all(stream_open(KEY_DEFAULT, { %req }, path => '/stream-fast/v1/chat/completions'));
@ev = stream_events($s->{buf});
is(contents(@ev), 'partial', 'idle after content: what came is kept');
is(ref $ev[-1] eq 'HASH' && $ev[-1]{error}{code}, 'stream_idle_timeout', 'idle after content: error chunk says why');
is(count('backup'), 0, 'idle after content: no second account');

# ---- the client goes away: the upstream is dropped at once ------------------------------------
mock_reset();
mock_script('primary', { sse => [ $ROLE, chunk('tick') ], hang => 20 });
$s = stream_open(KEY_DEFAULT, { %req });
stream_read($s, sub { $_[0] =~ /tick/ }, 10);
like($s->{buf}, qr/tick/, 'client got content, the upstream is now silent');
my $closed_at = time;
close $s->{sock};
my $seen = wait_client_closed('primary');
ok($seen, 'the upstream connection was closed after the client left');
cmp_ok(($seen->{time} // 1e12) - $closed_at, '<', 1.0, '...within a second, while the upstream was silent');
sleep 0.3;
like(log_of($s), qr/account=primary .*outcome=client_aborted/, 'recorded as aborted by the client');

mock_reset();
mock_script('primary', { delay => 20 });
$s = stream_open(KEY_DEFAULT, { %req });
sleep 0.5;
$closed_at = time;
close $s->{sock};
$seen = wait_client_closed('primary');
ok($seen && $seen->{time} - $closed_at < 1.0, 'client left before any content: upstream dropped within a second');
is(count('backup'), 0, 'client left: no failover for nobody');

# ---- the captured SDK requests stream correctly --------------------------------------------------
for my $f (qw(openai-sdk-chat-stream-include-usage openai-sdk-chat-stream-helper)) {
    open my $fh, '<', Apache::Test::vars('t_dir') . "/fixtures/$f.json" or die $!;
    my $cap = decode_json(do { local $/; <$fh> });
    mock_reset();
    $s = stream_all(stream_open(KEY_DEFAULT, $cap->{body}));
    @ev = stream_events($s->{buf});
    is(contents(@ev), 'Hello from primary', "$f: streams");
    my $wants = $cap->{body}{stream_options} && $cap->{body}{stream_options}{include_usage};
    is(!!grep({ ref $_ && ref $_->{usage} eq 'HASH' } @ev), !!$wants, "$f: usage chunk exactly when asked");
}
