# Scheduling: weights and priority tiers, max_concurrency across child
# processes with a bounded wait and a 429, no slot leaked by aborted
# streams and failovers, cooldowns from 429 (Retry-After, retry-after-ms),
# the error mark of a 401 and its clearing by tokenbay-admin, sticky
# sessions and previous_response_id across processes, a new account
# taking traffic without a restart, and cooldowns kept across a graceful
# restart. Runs on the tb_sched virtual host (realistic cooldowns, see
# t/conf/extra.conf.in), on accounts and models of its own (t/seed.sh).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use JSON::PP ();
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use TB::Test;

use constant KEY => 'tb-test-sched-key-000011';
use constant KEY2 => 'tb-test-sched-key2-00012';   # same group, another key

plan tests => 121;

Apache::TestRequest::module('tb_sched');
my $MOCK = 'http://127.0.0.1:' . ($ENV{TB_MOCK_PORT} || 18080) . '/a';
my $msgs = [ { role => 'user', content => 'hi' } ];
my $true = JSON::PP::true;

sub ask {
    my ($model, %o) = @_;
    return chat(KEY, { model => $model, messages => $msgs, %{ $o{body} || {} } },
                path => $o{path}, headers => $o{headers});
}
# Who answered (the mock says "Hello from ACCOUNT"), or the status.
sub who {
    my ($r) = @_;
    return 'HTTP ' . $r->code unless $r->code == 200;
    my $j = json_of($r);
    my $text = $j->{choices} ? $j->{choices}[0]{message}{content}
             : $j->{output}[-1]{content}[0]{text};
    return ($text // '') =~ /Hello from (\S+)/ ? $1 : '?';
}
sub count { scalar @{ mock_requests($_[0]) } }
sub field { my ($line, $name) = @_; $line =~ / \Q$name\E=(\S*)/ ? $1 : '' }

sub status {
    my ($account) = @_;
    my $r = Apache::TestRequest::GET('/tokenbay-status'
        . (defined $account ? "?account=$account" : ''));
    return $r->code == 200 ? json_of($r) : { error => $r->code };
}
sub acct { (grep { $_->{name} eq $_[0] } @{ status($_[0])->{accounts} || [] })[0] || {} }
# Wait (up to $t s) until $pred holds; returns its last value.
sub wait_for {
    my ($pred, $t) = @_;
    my $until = time + ($t // 8);
    my $v;
    until (($v = $pred->()) || time > $until) { sleep 0.1 }
    return $v;
}

# ---- connections that stay with one child process ----------------------------------

# A keep-alive connection and the pid of the child that serves it.
sub conn_open {
    my $sock = Apache::TestRequest::vhost_socket('tb_sched') or die 'no socket';
    my $c = { sock => $sock };
    my ($head) = conn_call($c, 'GET', '/v1/models');
    $c->{pid} = field(log_of({ head => $head }), 'pid');
    return $c;
}

# One HTTP/1.1 request on the connection; returns (head, body).
sub conn_call {
    my ($c, $method, $path, $body, %h) = @_;
    my $content = defined $body ? JSON::PP->new->encode($body) : '';
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        . KEY . "\r\n" . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
        . (defined $body ? "Content-Type: application/json\r\nContent-Length: "
           . length($content) . "\r\n" : '') . "\r\n" . $content;
    syswrite($c->{sock}, $req) == length $req or die 'short write';
    my $buf = '';
    until ($buf =~ /\r\n\r\n/) {
        sysread($c->{sock}, $buf, 65536, length $buf) or die 'connection closed';
    }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    while (length($rest) < ($len // 0)) {
        sysread($c->{sock}, $rest, 65536, length $rest) or die 'connection closed';
    }
    return ($head, $rest);
}

# Two connections served by two different child processes.
sub two_children {
    my @c = (conn_open());
    for (1 .. 40) {
        my $c = conn_open();
        return ($c[0], $c) if $c->{pid} ne $c[0]{pid};
        close $c->{sock};
    }
    return @c;
}

# A streamed request on a connection (HTTP/1.0: the body ends at close).
sub conn_stream {
    my ($c, $body, $path) = @_;
    my $content = JSON::PP->new->encode($body);
    my $req = 'POST ' . ($path // '/v1/chat/completions') . " HTTP/1.0\r\n"
        . "Host: localhost\r\nAuthorization: Bearer " . KEY . "\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($content)
        . "\r\n\r\n" . $content;
    syswrite($c->{sock}, $req) == length $req or die 'short write';
    return { sock => $c->{sock}, buf => '', head => undef, eof => 0 };
}
sub new_stream { conn_stream({ sock => Apache::TestRequest::vhost_socket('tb_sched') }, @_) }
# Run $code against the main server (no queue wait, 1 ms cooldowns).
sub on_main {
    my ($code) = @_;
    local $Apache::TestRequest::Module = undef;
    return $code->();
}
sub num { my $v = shift; defined $v && $v =~ /^\d+$/ ? $v : 0 }

mock_reset();

# ---- weights inside a tier; tiers by priority ----------------------------------------------
{
    my %n = (w1 => 0, w3 => 0);
    $n{ who(ask('sched-weights')) }++ for 1 .. 400;
    is($n{w1} + $n{w3}, 400, 'weights: every request served by w1 or w3');
    # binomial: 300 expected, sd 8.7; +-40 is 4.6 sd
    ok(abs($n{w3} - 300) <= 40, "weights 1:3: w3 took $n{w3} of 400 (300 +- 40)");

    my %t;
    $t{ who(ask('sched-tier')) }++ for 1 .. 20;
    is_deeply(\%t, { 'tier-hi' => 20 }, 'priority: the top tier takes everything while healthy');
    mock_script('tier-hi', { status => 500 });
    is(who(ask('sched-tier')), 'tier-lo', 'priority: the lower tier when the top one fails');
    is(who(ask('sched-tier')), 'tier-lo', 'priority: ... and while the top one cools');
    is(count('tier-hi'), 21, '... without trying it again');
    sleep 1.3;   # TokenBayErrorCooldown 1 on this host
    is(who(ask('sched-tier')), 'tier-hi', 'priority: the top tier again once its cooldown ended');
}

# ---- max_concurrency across processes -------------------------------------------------------
{
    mock_reset();
    my $slow = { sse_default => $true, event_delay => 1.0 };
    mock_default($_, $slow) for qw(lim-a lim-b);
    my $body = { model => 'sched-limit', messages => $msgs, stream => $true };
    my ($c1, $c2) = two_children();
    isnt($c1->{pid}, $c2->{pid}, "two connections on two child processes ($c1->{pid}, $c2->{pid})");
    my @s = (conn_stream($c1, $body), conn_stream($c2, $body));
    stream_read($_, sub { $_[0] =~ /data:/ }, 8) for @s;
    ok((grep { ($_->{head} // '') =~ m{^HTTP/\S+ 200} } @s) == 2, 'two streams run on lim-a (limit 2)');
    is(acct('lim-a')->{in_flight}, 2, 'the status page: lim-a 2 in flight, from two processes');
    my $s3 = new_stream($body);
    stream_read($s3, sub { $_[0] =~ /data:/ }, 8);
    like($s3->{head} // '', qr{^HTTP/\S+ 200}, 'a third stream is served ...');
    is(acct('lim-b')->{in_flight}, 1, '... by lim-b: lim-a is full in every process');

    my $r = ask('sched-limit', path => '/noqueue/v1/chat/completions');
    error_is($r, 429, 'rate_limit_exceeded', 'all full, TokenBayQueueTimeout 0: 429 at once');
    like($r->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
    is(field(log_of($r), 'outcome'), 'rejected', '... logged as rejected');
    $r = ask('sched-limit');
    error_is($r, 429, 'rate_limit_exceeded', 'all full, TokenBayQueueTimeout 1500ms: 429 after waiting');
    my $q = num(field(log_of($r), 'queue'));
    ok($q >= 1500, "... at least the 1500 ms of TokenBayQueueTimeout (TOKENBAY_QUEUE_MS $q)");

    # a waiting request gets the slot a finished one gives back
    my $waiter = new_stream($body);
    sleep 0.3;
    close $s[0]{sock};   # the client of a lim-a stream goes away
    stream_all($waiter, 12);
    like($waiter->{head} // '', qr{^HTTP/\S+ 200}, 'a request waiting for a slot is served when one frees');
    like($waiter->{buf}, qr/lim-a/, '... by lim-a');
    $q = num(field(log_of($waiter), 'queue'));
    ok($q > 0, "... after waiting (TOKENBAY_QUEUE_MS $q)");
    stream_all($_, 15) for $s[1], $s3;
    like($s3->{buf}, qr/lim-b/, 'the third stream came from lim-b');
    ok(wait_for(sub { !acct('lim-a')->{in_flight} && !acct('lim-b')->{in_flight} }),
       'once all ended: nothing in flight');
    close $c2->{sock};
}

# ---- a child that dies holding slots: the parent gives them back ----------------------------
{
    mock_reset();
    mock_default('lim-a', { sse_default => $true, event_delay => 1.0 });
    my $c = conn_open();
    my $s = conn_stream($c, { model => 'sched-limit', messages => $msgs, stream => $true });
    stream_read($s, sub { $_[0] =~ /data:/ }, 8);
    is(acct('lim-a')->{in_flight}, 1, "a stream holds a lim-a slot in process $c->{pid}");
    ok(kill('KILL', $c->{pid}), "that process is killed (SIGKILL) mid-stream");
    ok(wait_for(sub { defined acct('lim-a')->{in_flight} && !acct('lim-a')->{in_flight} }, 10),
       '... and the parent gives its slot back: 0 in flight');
    my $log = do { local $/; open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or die; <$fh> };
    like($log, qr/TB60: process $c->{pid} ended holding 1 upstream slot: given back/, '... and says so (TB60)');
    close $c->{sock};
}

# ---- no slot leaks: aborted streams and failovers ------------------------------------------
{
    mock_reset();
    mock_default('lim-a', { sse_default => $true, event_delay => 0.05 });
    my $body = { model => 'sched-limit', messages => $msgs, stream => $true };
    my $started = 0;
    for (1 .. 150) {
        # on the main server (no queue wait, no cooldowns), two at a time
        my @s = map {
            on_main(sub { conn_stream({ sock => Apache::TestRequest::vhost_socket() }, $body) })
        } 1 .. 2;
        for my $s (@s) {
            stream_read($s, sub { $_[0] =~ /data:/ }, 5);
            $started++ if ($s->{head} // '') =~ m{^HTTP/\S+ 200};
            close $s->{sock};
        }
        last if $started >= 200;
    }
    ok($started >= 200, "$started streams started and were abandoned by their client");
    mock_reset();
    mock_script('lim-a', map { { status => 500 } } 1 .. 100);
    my $moved = 0;
    on_main(sub { $moved += who(ask('sched-limit')) eq 'lim-b' for 1 .. 100 });
    is($moved, 100, '100 requests failed over from lim-a to lim-b');
    ok(wait_for(sub { my $a = acct('lim-a'); my $b = acct('lim-b');
                      defined $a->{in_flight} && !$a->{in_flight} && !$b->{in_flight} }),
       'afterwards the status page shows 0 in flight on both: no slot leaked');
}

# ---- 429: the account cools for Retry-After, traffic moves, and returns ----------------------
{
    mock_reset();
    mock_script('cool-a', { status => 429, headers => { 'Retry-After' => '2' },
        body => { error => { message => 'Rate limit reached', type => 'requests', code => 'rate_limit_exceeded' } } });
    my $r = ask('sched-cool');
    is(who($r), 'cool-b', '429 from cool-a: cool-b answers');
    my @later = map { who(ask('sched-cool')) } 1 .. 5;
    is_deeply(\@later, [ ('cool-b') x 5 ], 'while cool-a cools, cool-b takes the traffic ...');
    is(count('cool-a'), 1, '... and cool-a is not tried');
    my $a = acct('cool-a');
    is($a->{status}, 'cooling', 'the status page: cool-a cooling');
    my ($m) = @{ $a->{models_cooling} || [] };
    is($m->{model} // '', 'sched-cool', '... for the model it was asked for');
    is($m->{reason} // '', 'rate_limited', '... because it was rate limited');
    ok(($m->{remaining_ms} // 0) > 0 && $m->{remaining_ms} <= 2000,
       "... for at most the 2 s asked ($m->{remaining_ms} ms left)");
    is($a->{last_error}{http_status}, 429, '... last error: HTTP 429');
    sleep 2.2;
    is(who(ask('sched-cool')), 'cool-a', 'after Retry-After cool-a is used again');
    is(acct('cool-a')->{status}, 'ok', '... and the status page says ok');
}

# ---- every account 429: the one that recovers first; retry-after-ms wins ----------------------
{
    mock_reset();
    mock_script('all-a', { status => 429, headers => { 'Retry-After' => '4' } });
    mock_script('all-b', { status => 429, headers => { 'retry-after-ms' => '1500', 'Retry-After' => '9' } });
    my $r = ask('sched-all');
    error_is($r, 503, 'upstream_rate_limited', 'both accounts 429: 503');
    is($r->header('retry-after-ms'), '1500', '... with retry-after-ms 1500: the milliseconds win over Retry-After 9');
    is($r->header('Retry-After'), '2', '... and Retry-After rounded up from them');
    $r = ask('sched-all');
    is(who($r), 'all-b', 'both cooling: the one that recovers first (all-b) is tried, not a 503');
    is(field(log_of($r), 'sched'), 'recovering', '... TOKENBAY_SCHED says recovering');
    is(count('all-a'), 1, '... and all-a was left alone');
}

# ---- 401 marks the account error until an operator re-enables it ---------------------------
{
    mock_reset();
    mock_script('auth-a', { status => 401, body => { error => { message => 'Incorrect API key provided: sk-auth-a***aaaa', type => 'invalid_request_error', code => 'invalid_api_key' } } });
    is(who(ask('sched-auth')), 'auth-b', '401 from auth-a: auth-b answers');
    sleep 1.2;   # past any cooldown: the mark is not one
    my @later = map { who(ask('sched-auth')) } 1 .. 3;
    is_deeply(\@later, [ ('auth-b') x 3 ], 'auth-a is not scheduled again ...');
    is(count('auth-a'), 1, '... nor tried');
    my $a = acct('auth-a');
    is($a->{status}, 'error', 'the status page: auth-a error');
    is($a->{error}{http_status}, 401, '... from HTTP 401');
    ok(wait_for(sub { (acct('auth-a')->{db_status} // '') eq 'error' }),
       'the mark is in the database too (every host drops the account)');
    ok(wait_for(sub { ((acct('auth-a')->{error} || {})->{reason} // '') =~ /HTTP 401: invalid_api_key/ }),
       '... with the reason: the status and the upstream code');
    my $log = do { local $/; open my $fh, '<', Apache::Test::vars('t_logs') . '/error_log' or die; <$fh> };
    like($log, qr/TB53: account auth-a marked error: upstream answered HTTP 401/, 'the error log says so');
    unlike($log, qr/sk-auth-a/, '... without the credential or the upstream message quoting it');
    my ($rc, $out) = admin('account', 'enable', 'auth-a');
    is($rc, 0, 'tokenbay-admin account enable auth-a') or diag $out;
    ok(wait_for(sub { (acct('auth-a')->{status} // '') eq 'ok' }), 'the mark is cleared at the next catalogue reload');
    ok(wait_for(sub { who(ask('sched-auth')) eq 'auth-a' }), 'auth-a takes traffic again');
}

# ---- sticky sessions ------------------------------------------------------------------------
{
    mock_reset();
    my $sid = 'sess-' . int(rand(1e9));
    my @who = map { who(ask('sched-sticky', headers => { session_id => $sid })) } 1 .. 8;
    my %seen = map { $_ => 1 } @who;
    is(scalar(keys %seen), 1, "session_id: 8 requests of a session stay on one account ($who[0])");
    is(field(log_of(ask('sched-sticky', headers => { session_id => $sid })), 'sched'), 'session',
       '... TOKENBAY_SCHED says session');
    my $pck = 'pck-' . int(rand(1e9));
    @who = map { who(ask('sched-sticky', body => { prompt_cache_key => $pck })) } 1 .. 8;
    %seen = map { $_ => 1 } @who;
    is(scalar(keys %seen), 1, 'prompt_cache_key: the same');

    # across processes: sessions begun in one child continue in another
    my ($c1, $c2) = two_children();
    my ($same, $n) = (0, 8);
    for my $i (1 .. $n) {
        my $s = "xproc-$i-" . int(rand(1e9));
        my $req = { model => 'sched-sticky', messages => $msgs };
        my (undef, $b1) = conn_call($c1, 'POST', '/v1/chat/completions', $req, session_id => $s);
        my (undef, $b2) = conn_call($c2, 'POST', '/v1/chat/completions', $req, session_id => $s);
        my ($w1) = $b1 =~ /Hello from (\S+?)"/;
        my ($w2) = $b2 =~ /Hello from (\S+?)"/;
        $same++ if $w1 && $w2 && $w1 eq $w2;
    }
    is($same, $n, "$n sessions begun in process $c1->{pid} keep their account in process $c2->{pid}");
    close $_->{sock} for $c1, $c2;

    # escape: the session's account cools; it is left, not waited for
    my $x = $who[0];
    my $y = $x eq 'st-a' ? 'st-b' : 'st-a';
    my $other;   # a second session on $x
    for (1 .. 30) {
        my $s = 'esc-' . int(rand(1e9));
        if (who(ask('sched-sticky', headers => { session_id => $s })) eq $x) { $other = $s; last }
    }
    ok($other, "a second session sticks to $x");
    mock_script($x, { status => 429, headers => { 'Retry-After' => '3' } });
    is(who(ask('sched-sticky', body => { prompt_cache_key => $pck })), $y,
       "the first session's account answers 429: it fails over to $y");
    my $before = count($x);
    is(who(ask('sched-sticky', headers => { session_id => $other })), $y,
       "the second session, sticky to $x while it cools, goes to $y ...");
    is(count($x), $before, "... without trying $x");
}

# ---- previous_response_id: the account that produced the response --------------------------
{
    mock_reset();
    my $r = ask('sched-resp', path => '/v1/responses', body => { input => 'hi' });
    is($r->code, 200, 'a Responses request') or diag $r->content;
    my $id = json_of($r)->{id};
    my $first = field(log_of($r), 'account');
    my ($c1, $c2) = two_children();
    my %seen;
    for my $c ($c1, $c2, $c1, $c2) {
        my ($head, $body) = conn_call($c, 'POST', '/v1/responses',
            { model => 'sched-resp', input => 'more', previous_response_id => $id });
        my $line = log_of({ head => $head });
        $seen{ field($line, 'account') . '/' . field($line, 'sched') }++;
    }
    is_deeply([ keys %seen ], [ "$first/previous_response" ],
              "4 continuations, in two processes, all go to $first, chosen by previous_response_id");
    # a streamed response is remembered too
    my $s = new_stream({ model => 'sched-resp', input => 'hi', stream => $true }, '/v1/responses');
    stream_all($s, 10);
    my ($sid) = $s->{buf} =~ /"id":"(resp_[^"]+)"/;
    my $sacct = field(log_of($s), 'account');
    ok($sid, "a streamed response ($sacct)");
    my @acc = map { field(log_of(ask('sched-resp', path => '/v1/responses',
        body => { input => 'x', previous_response_id => $sid })), 'account') } 1 .. 4;
    is_deeply(\@acc, [ ($sacct) x 4 ], '... continued on the account that streamed it');
    # the owner fails: no other account is asked to continue what it lacks
    my $other = $first eq 'rs-a' ? 'rs-b' : 'rs-a';
    my $n_other = count($other);
    mock_script($first, { status => 500 });
    $r = ask('sched-resp', path => '/v1/responses', body => { input => 'x', previous_response_id => $id });
    error_is($r, 502, 'upstream_error', "$first fails a continuation: the client gets that failure");
    is(count($other), $n_other, "... $other, which does not hold the response, is not asked");
    # the owner disabled: the upstream's not-found, not a new conversation elsewhere
    my ($rc) = admin('account', 'disable', $first);
    my $cont = sub { ask('sched-resp', path => '/v1/responses',
                         body => { input => 'x', previous_response_id => $id }) };
    my $gone;
    wait_for(sub { $gone = $cont->(); $gone->code == 404 });
    error_is($gone, 404, 'previous_response_not_found',
             "$first disabled: 404 previous_response_not_found");
    is(json_of($gone)->{error}{param}, 'previous_response_id', '... naming previous_response_id');
    is(count($other), $n_other, "... and $other was still not asked");
    admin('account', 'enable', $first);
    ok(wait_for(sub { $cont->()->code == 200 }), "$first enabled again: the conversation continues");
    close $_->{sock} for $c1, $c2;
}

# ---- GET and DELETE .../responses/{id}: the account that made it, for its key only ----
{
    my $tiny = HTTP::Tiny->new(timeout => 15);
    my $call = sub {
        my ($method, $path, $key, $content) = @_;
        my $res = $tiny->request($method, Apache::TestRequest::resolve_url($path), {
            headers => { Authorization => "Bearer $key",
                         (defined $content ? ('Content-Type' => 'application/json') : ()) },
            (defined $content ? (content => $content) : ()) });
        $res->{json} = eval { JSON::PP->new->decode($res->{content}) } || {};
        $res->{head} = 'x-request-id: ' . ($res->{headers}{'x-request-id'} // '');
        return $res;
    };
    mock_reset();
    my $r = ask('sched-resp', path => '/v1/responses', body => { input => 'keep this' });
    my $id = json_of($r)->{id};
    my $owner = field(log_of($r), 'account');
    my $g = $call->('GET', "/v1/responses/$id", KEY);
    is($g->{status}, 200, "GET /v1/responses/{id}: 200");
    is($g->{json}{id}, $id, '... the response ...');
    my @gets = grep { $_->{method} eq 'GET' } @{ mock_requests($owner) };
    ok(@gets == 1 && $gets[0]{path} =~ m{/responses/\Q$id\E$}, "... from $owner, the account that made it");
    is(field(log_of($g), 'route'), 'response_get', '... logged as route response_get');
    my $other = $call->('GET', "/v1/responses/$id", KEY2);
    is($other->{status}, 404, 'another key: 404 ...');
    is($other->{json}{error}{code} // '', 'response_not_found', '... response_not_found, as for an id that never existed');
    is($call->('GET', '/v1/responses/resp_never', KEY)->{status}, 404, 'an unknown id: 404');
    my $d = $call->('DELETE', "/v1/responses/$id", KEY);
    is($d->{status}, 200, 'DELETE /v1/responses/{id}: 200');
    ok($d->{json}{deleted} && (grep { $_->{method} eq 'DELETE' } @{ mock_requests($owner) }),
       "... deleted by $owner");
    my $put = $call->('PUT', "/v1/responses/$id", KEY, '{}');
    is($put->{status}, 405, 'PUT: 405 ...');
    like($put->{headers}{allow} // '', qr/GET, DELETE/, '... Allow: GET, DELETE');
}

# ---- a new account takes traffic without a restart --------------------------------------------
{
    mock_reset();
    is(who(ask('sched-late')), 'late-old', 'before: late-old serves sched-late');
    my ($rc, $out) = admin('account', 'add', 'late-new', '--base-url', "$MOCK/late-new/v1",
        '--credential', 'sk-late-new-secret-0000aaaa', '--priority', '10', '--groups', 'sched',
        '--models', 'sched-late');
    is($rc, 0, 'tokenbay-admin account add late-new (priority 10)') or diag $out;
    ok(wait_for(sub { who(ask('sched-late')) eq 'late-new' }), 'late-new takes traffic after the catalogue reload');
}

# ---- what cools what: quota, one model, a refused connection ------------------------------
{
    mock_reset();
    mock_script('quota-a', { status => 429, body => { error => { message => 'You exceeded your current quota',
        type => 'insufficient_quota', code => 'insufficient_quota' } } });
    is(who(ask('sched-quota')), 'quota-b', 'insufficient_quota from quota-a: quota-b answers');
    my $c = acct('quota-a')->{cooldown} || {};
    is($c->{reason} // '', 'quota_exhausted', 'the whole account cools, for an exhausted quota ...');
    ok(num($c->{remaining_ms}) > 20000, "... for long (TokenBayQuotaCooldown 30: $c->{remaining_ms} ms left)");

    mock_script('pm-a', { status => 429, headers => { 'Retry-After' => '5' } });
    is(who(ask('sched-pm1')), 'pm-b', 'a 429 for one model: that model moves to pm-b ...');
    is(who(ask('sched-pm2')), 'pm-a', '... while pm-a keeps serving its other model');
    my @m = map { $_->{model} } @{ acct('pm-a')->{models_cooling} || [] };
    is_deeply(\@m, [ 'sched-pm1' ], '... the status page lists the one model cooling');

    my $r = ask('sched-conn');
    is(who($r), 'conn-y', 'connection refused by conn-x: conn-y answers');
    is(field(log_of($r), 'attempts'), '2', '... on the second attempt');
    $r = ask('sched-conn');
    is(field(log_of($r), 'attempts'), '1', 'then conn-x cools: the next request goes straight to conn-y');
    is((acct('conn-x')->{cooldown} || {})->{reason} // '', 'connect_failed', '... the status page says why');
}

# ---- the status page and tokenbay-admin account status ---------------------------------------
{
    my $r = Apache::TestRequest::GET('/tokenbay-status');
    is($r->code, 200, 'the status page answers');
    like($r->header('Content-Type') // '', qr{^application/json}, '... in JSON');
    my $all = $r->content;
    unlike($all, qr/secret|\/a\/|127\.0\.0\.1:/, '... with no credential and no upstream URL');
    is(status()->{object}, 'tokenbay.status', '... object tokenbay.status');
    $r = Apache::TestRequest::GET('/tokenbay-status?format=text');
    like($r->header('Content-Type') // '', qr{^text/plain}, '?format=text: a text table');
    like($r->content, qr/^quota-a\s+cooling/m, '... a line per account with its status');
    $r = Apache::TestRequest::GET('/tokenbay-status?account=cool-b');
    my $j = json_of($r);
    is(scalar @{ $j->{accounts} || [] }, 1, '?account=cool-b: one account');
    ok(num($j->{accounts}[0]{successes}) >= 5, '... with its successes counted');
    ok(num(($j->{accounts}[0]{recent} || {})->{successes}) >= 5
       && ($j->{accounts}[0]{recent}{seconds} // 0) == 300, '... in all and in the last five minutes');
    error_is(Apache::TestRequest::GET('/tokenbay-status?account=nope'), 404, 'account_not_found',
             '?account=unknown: 404');
    is(Apache::TestRequest::POST('/tokenbay-status', content => '')->code, 405, 'POST: 405');

    my $url = Apache::TestRequest::resolve_url('/tokenbay-status');
    my ($rc, $out) = admin('account', 'status', 'quota-a', '--url', $url);
    is($rc, 0, 'tokenbay-admin account status quota-a') or diag $out;
    like($out, qr/quota-a.*cooling/, '... shows it cooling');
    ($rc, $out) = admin('account', 'status', '--json', '--url', $url);
    my $parsed = eval { JSON::PP->new->decode($out) } || {};
    ok((grep { $_->{name} eq 'conn-x' } @{ $parsed->{accounts} || [] }), '... --json: the page as JSON');
    ($rc, $out) = admin('account', 'status', 'nope', '--url', $url);
    is($rc, 1, '... an unknown account: exit 1');
}

# ---- a graceful restart keeps cooldowns -------------------------------------------------------
{
    mock_reset();
    mock_script('gr-a', { status => 429, headers => { 'Retry-After' => '20' } });
    is(who(ask('sched-restart')), 'gr-b', '429 from gr-a (Retry-After 20): gr-b answers');
    my $pidfile = Apache::Test::vars('t_logs') . '/httpd.pid';
    open my $fh, '<', $pidfile or die "$pidfile: $!";
    chomp(my $ppid = <$fh>);
    my $gen = sub { my $l = do { local $/; open my $e, '<', Apache::Test::vars('t_logs') . '/error_log' or die; <$e> };
                    scalar(() = $l =~ /resuming normal operations/g) };
    my $before = $gen->();
    ok(kill('USR1', $ppid), 'httpd restarts gracefully');
    ok(wait_for(sub { $gen->() > $before }, 15), '... and resumes');
    Apache::TestRequest::user_agent(reset => 1, keep_alive => 0);
    ok(wait_for(sub { my $r = ask('sched-restart'); $r->code == 200 }, 10), 'the new generation serves');
    is(acct('gr-a')->{status}, 'cooling', 'after the restart gr-a still cools (status page)');
    my @w = map { who(ask('sched-restart')) } 1 .. 3;
    is_deeply(\@w, [ ('gr-b') x 3 ], '... and gr-b takes the traffic');
    is(count('gr-a'), 1, '... gr-a is not tried');
}
