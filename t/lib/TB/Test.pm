package TB::Test;
# Shared helpers for the mod_tokenbay suite: gateway requests, the mock
# upstream's control API, and tokenbay-admin. Fixture names (keys, groups,
# accounts, models) are created by t/seed.sh.
use strict;
use warnings;

use Exporter 'import';
use HTTP::Tiny;
use JSON::PP;
use Apache::TestRequest ();
use Test::More ();
use Time::HiRes ();

our @EXPORT = qw(
    KEY_DEFAULT KEY_LIMITED KEY_RESTRICTED KEY_DISABLED KEY_EXPIRED
    KEY_TOGGLE KEY_DBDOWN KEY_OTHER KEY_FROZEN KEY_DIALECTS
    chat chat_raw get_models json_of error_is
    mock_reset mock_script mock_default mock_requests mock_events
    admin db_ctl
    stream_open stream_read stream_events stream_all chunk
    sse_blocks resp_events fixture log_line log_of
);

use constant {
    KEY_DEFAULT    => 'tb-test-default-key-0001',
    KEY_LIMITED    => 'tb-test-limited-key-0002',
    KEY_RESTRICTED => 'tb-test-restricted-0003',
    KEY_DISABLED   => 'tb-test-disabled-key-04',
    KEY_EXPIRED    => 'tb-test-expired-key-005',
    KEY_TOGGLE     => 'tb-test-toggle-key-0006',
    KEY_DBDOWN     => 'tb-test-dbdown-key-0007',
    KEY_OTHER      => 'tb-test-other-key-00008',
    KEY_FROZEN     => 'tb-test-frozen-key-0009',
    KEY_DIALECTS   => 'tb-test-dialects-key-010',
};

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $MOCK = 'http://127.0.0.1:' . ($ENV{TB_MOCK_PORT} || 18080);
my $http = HTTP::Tiny->new(timeout => 30);

# POST a body (hashref → JSON, or a raw string) to the gateway.
# Options: key => KEY (undef: no Authorization), path => '/v1/chat/completions',
# headers => {...}.
sub chat_raw {
    my ($body, %o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my %h = ('Content-Type' => 'application/json', %{ $o{headers} || {} });
    $h{Authorization} = "Bearer $o{key}" if defined $o{key};
    my $content = ref $body ? $JSON->encode($body) : $body;
    return Apache::TestRequest::POST($path, %h, content => $content);
}

sub chat {
    my ($key, $body, %o) = @_;
    return chat_raw($body, key => $key, %o);
}

sub get_models {
    my ($key, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Authorization} = "Bearer $key" if defined $key;
    return Apache::TestRequest::GET($o{path} || '/v1/models', %h);
}

sub json_of {
    my ($res) = @_;
    my $v = eval { $JSON->decode($res->content) };
    return $v;
}

# Assert an OpenAI-shaped gateway error: status, error.code, a request id.
sub error_is {
    my ($res, $status, $code, $name) = @_;
    my $j = json_of($res) || {};
    my $e = ref $j->{error} eq 'HASH' ? $j->{error} : {};
    my $ok = $res->code == $status
        && defined $e->{message} && length $e->{message}
        && defined $e->{type}
        && exists $e->{param}
        && (defined $code ? ($e->{code} // '') eq $code : 1)
        && ($res->header('Content-Type') // '') =~ m{^application/json}
        && ($res->header('x-request-id') // '') =~ /\S/;
    Test::More::ok($ok, $name)
        or Test::More::diag("got " . $res->code . " " . $res->content);
    return $e;
}

# ---- raw streaming --------------------------------------------------------------
# LWP buffers whole bodies; streams are read from the socket as they come.
# HTTP/1.0 keeps the framing simple: no chunking, the body ends at close.

# Send a streaming request; returns a handle for stream_read.
sub stream_open {
    my ($key, $body, %o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my $content = ref $body ? $JSON->encode($body) : $body;
    my $sock = Apache::TestRequest::vhost_socket() or die "no socket";
    my $req = "POST $path HTTP/1.0\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nAccept: application/json\r\n"
        . (defined $key ? "Authorization: Bearer $key\r\n" : '')
        . "Content-Length: " . length($content) . "\r\n\r\n" . $content;
    syswrite($sock, $req) == length $req or die "short write";
    return { sock => $sock, buf => '', head => undef, eof => 0 };
}

# Read until $pred->($body) is true, EOF, or $timeout seconds; returns the
# body so far. The head (status line and headers) is kept in $s->{head}.
sub stream_read {
    my ($s, $pred, $timeout) = @_;
    $timeout //= 10;
    my $until = Time::HiRes::time() + $timeout;
    while (!$s->{eof}) {
        if (defined $s->{head} && $pred && $pred->($s->{buf})) { last }
        my $left = $until - Time::HiRes::time();
        last if $left <= 0;
        my $rin = '';
        vec($rin, fileno($s->{sock}), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, $left);
        my $n = sysread($s->{sock}, my $chunk, 65536);
        if (!$n) { $s->{eof} = 1; last }
        $s->{buf} .= $chunk;
        if (!defined $s->{head} && $s->{buf} =~ s/\A(.*?)\r\n\r\n//s) {
            $s->{head} = $1;
        }
    }
    return $s->{buf};
}

sub stream_all { my ($s, $t) = @_; stream_read($s, undef, $t // 15); $s }

# The data payloads of the body's complete events, decoded when JSON.
sub stream_events {
    my ($body) = @_;
    my @ev;
    for my $block (split /\n\n/, $body) {
        next unless $block =~ /^data: (.*)$/m;
        my $d = $1;
        push @ev, $d eq '[DONE]' ? '[DONE]' : (eval { $JSON->decode($d) } // $d);
    }
    return @ev;
}

# The body's complete SSE events as { event, id, data (decoded when JSON),
# raw } hashes, in order.
sub sse_blocks {
    my ($body) = @_;
    my @ev;
    for my $block (split /\n\n/, $body) {
        my %e = (raw => $block);
        my @data;
        for my $line (split /\n/, $block) {
            if ($line =~ /^event: ?(.*)$/) { $e{event} = $1 }
            elsif ($line =~ /^id: ?(.*)$/) { $e{id} = $1 }
            elsif ($line =~ /^data: ?(.*)$/) { push @data, $1 }
        }
        next unless @data;
        my $d = join "\n", @data;
        $e{data} = $d eq '[DONE]' ? '[DONE]' : (eval { $JSON->decode($d) } // $d);
        push @ev, \%e;
    }
    return @ev;
}

# The decoded data of a Responses stream's events (hashes with "type").
sub resp_events { map { $_->{data} } sse_blocks(@_) }

# A captured client request from t/fixtures: { method, url, headers, body }.
sub fixture {
    my ($name) = @_;
    my $dir = Apache::Test::vars('t_dir') . '/fixtures';
    open my $fh, '<', "$dir/$name.json" or die "$dir/$name.json: $!";
    local $/;
    return $JSON->decode(<$fh>);
}

# The last line of logs/tokenbay_log matching $re ('' when none).
sub log_line {
    my ($re) = @_;
    open my $fh, '<', Apache::Test::vars('t_logs') . '/tokenbay_log' or die $!;
    my @l = grep { /$re/ } <$fh>;
    return $l[-1] // '';
}

# The access log line of one request, found by its x-request-id: $what is
# an HTTP::Response or a stream handle (stream_open). httpd writes the line
# after the response is sent, so this waits for it (up to $timeout s).
sub log_of {
    my ($what, $timeout) = @_;
    my $id = ref $what eq 'HASH'
        ? ((($what->{head} // '') =~ /^x-request-id:\s*(\S+)/mi)[0])
        : $what->header('x-request-id');
    return '' unless defined $id;
    my $until = Time::HiRes::time() + ($timeout // 5);
    my $file = Apache::Test::vars('t_logs') . '/tokenbay_log';
    while (1) {
        if (open my $fh, '<', $file) {
            my ($l) = grep { / req=\Q$id\E / } <$fh>;
            return $l if defined $l;
        }
        return '' if Time::HiRes::time() > $until;
        Time::HiRes::sleep(0.05);
    }
}

# A chat.completion.chunk with a content delta (and optional extras).
sub chunk {
    my ($content, %extra) = @_;
    my $delta = defined $content ? { content => $content } : {};
    return { data => { id => 'chatcmpl-test', object => 'chat.completion.chunk',
        created => 1, model => 'm', choices => [ { index => 0, delta => $delta,
        finish_reason => $extra{finish} } ], %{ $extra{top} || {} } } };
}

# ---- the mock upstream ------------------------------------------------------------

sub _mock_post {
    my ($path, $data) = @_;
    my $r = $http->post("$MOCK/__mock/$path", {
        headers => { 'Content-Type' => 'application/json' },
        content => $JSON->encode($data) });
    die "mock $path: $r->{status} $r->{content}" unless $r->{success};
    return $JSON->decode($r->{content});
}

sub _mock_get {
    my ($path, $account) = @_;
    my $r = $http->get("$MOCK/__mock/$path" . (defined $account ? "?account=$account" : ''));
    die "mock $path: $r->{status}" unless $r->{success};
    return $JSON->decode($r->{content});
}

sub mock_reset    { _mock_post('reset', {}) }
sub mock_script   { my ($acct, @steps) = @_; _mock_post('script', { account => $acct, steps => \@steps }) }
sub mock_default  { my ($acct, $step) = @_; _mock_post('default', { account => $acct, step => $step }) }
sub mock_requests { _mock_get('requests', $_[0]) }
sub mock_events   { _mock_get('events', $_[0]) }

# ---- operator tools ------------------------------------------------------------------

# Run tokenbay-admin; returns (exit code, combined output).
sub admin {
    my @args = @_;
    my $root = $ENV{TB_ROOT} || '.';
    my $cmd = join ' ', map { quotemeta } ('perl', "$root/scripts/tokenbay-admin", @args);
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# scripts/db.sh start|stop
sub db_ctl {
    my ($what) = @_;
    my $root = $ENV{TB_ROOT} || '.';
    system("$root/scripts/db.sh", $what) == 0 or die "db.sh $what failed";
}

1;
