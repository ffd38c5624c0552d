# A long stream does not grow the server: 100,000 events (about 15 MB) pass
# through, and the children's resident memory grows by far less than the
# stream itself (per-event work lives in a pool cleared after every read).
# Every request goes over one keep-alive connection, so one child serves
# them all and before/after compare the same process; that child's worker
# threads are all warmed first (each touches its stack on first use).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use TB::Test;

plan tests => 5;

my $N = 100_000;

sub children_rss_kb {
    my $ppid = do {
        open my $fh, '<', Apache::Test::vars('t_logs') . '/httpd.pid' or die $!;
        my $p = <$fh>; chomp $p; $p;
    };
    my $sum = 0;
    for my $st (glob '/proc/[0-9]*/status') {
        open my $fh, '<', $st or next;
        my $txt = do { local $/; <$fh> };
        next unless $txt =~ /^PPid:\s+$ppid$/m;
        $sum += $1 if $txt =~ /^VmRSS:\s+(\d+) kB/m;
    }
    return $sum;
}

# One HTTP/1.1 request on a kept-alive socket; returns the de-chunked body.
my $sock = Apache::TestRequest::vhost_socket() or die 'no socket';
my $rbuf = '';
sub fill { my $n = sysread($sock, my $c, 1 << 16); die "closed" unless $n; $rbuf .= $c }
sub ka_stream {
    my ($body) = @_;
    my $json = JSON::PP->new->encode($body);
    print $sock "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer " . KEY_DEFAULT . "\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($json) . "\r\n\r\n" . $json;
    fill() until $rbuf =~ /\r\n\r\n/;
    $rbuf =~ s/\A.*?\r\n\r\n//s;
    my $out = '';
    for (;;) {
        fill() until $rbuf =~ /\A([0-9a-fA-F]+)\r\n/;
        my $size = hex $1;
        fill() while length($rbuf) < length($1) + 2 + $size + 2;
        $out .= substr($rbuf, length($1) + 2, $size);
        substr($rbuf, 0, length($1) + 2 + $size + 2) = '';
        last if $size == 0;
    }
    return $out;
}

my $one = JSON::PP->new->canonical->encode(chunk('x')->{data});
my $events = ("data: $one\n\n" x $N) . 'data: ' . JSON::PP->new->encode(chunk(undef, finish => 'stop')->{data})
    . "\n\ndata: [DONE]\n\n";
my %req = (model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ],
           stream => JSON::PP::true);

# warm every worker thread of the child (25 by default) with short streams
mock_reset();
for (1 .. 30) {
    mock_script('primary', { sse => [ { raw => ("data: $one\n\n" x 2000) . "data: [DONE]\n\n" } ] });
    ka_stream({ %req });
}
my $before = children_rss_kb();

mock_script('primary', { sse => [ { raw => $events } ] });
my $got = ka_stream({ %req });
my $after = children_rss_kb();
my $count = () = $got =~ /"content":"x"/g;

is($count, $N, "all $N content events reached the client");
like($got, qr/data: \[DONE\]\n\n\z/, 'and the stream ended with [DONE]');
cmp_ok(length $got, '>', 10_000_000, 'more than 10 MB went through');
my $growth = $after - $before;
diag(sprintf "children RSS: %d kB before, %d kB after (%+d kB) for %.1f MB streamed",
     $before, $after, $growth, length($got) / 1e6);
SKIP: {
    # AddressSanitizer holds freed memory in quarantine: RSS says nothing there
    skip 'RSS is not meaningful under AddressSanitizer', 2 if $ENV{TB_SANITIZE};
cmp_ok($growth, '<', 15_000, 'server memory grew by less than the stream itself');

# the same stream again: whatever the first one left was a high-water mark,
# not growth with the number of events
mock_script('primary', { sse => [ { raw => $events } ] });
ka_stream({ %req });
my $again = children_rss_kb();
diag(sprintf "children RSS after a second 100,000-event stream: %d kB (%+d kB)",
     $again, $again - $after);
cmp_ok($again - $after, '<', 1024, 'a second long stream adds less than 1 MB');
}
