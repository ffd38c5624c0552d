# A long stream does not grow the server: 100,000 events (about 15 MB) pass
# through, and the children's resident memory grows by far less than the
# stream itself (per-event work lives in a pool cleared after every read).
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

my $one = JSON::PP->new->canonical->encode(chunk('x')->{data});
my $events = ("data: $one\n\n" x $N) . 'data: ' . JSON::PP->new->encode(chunk(undef, finish => 'stop')->{data})
    . "\n\ndata: [DONE]\n\n";
my %req = (model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ],
           stream => JSON::PP::true);

# warm every child's allocator and caches with a short stream first
mock_reset();
for (1 .. 4) {
    mock_script('primary', { sse => [ { raw => ("data: $one\n\n" x 2000) . "data: [DONE]\n\n" } ] });
    stream_all(stream_open(KEY_DEFAULT, { %req }));
}
my $before = children_rss_kb();

mock_script('primary', { sse => [ { raw => $events } ] });
my $s = stream_all(stream_open(KEY_DEFAULT, { %req }), 60);
my $after = children_rss_kb();
my $count = () = $s->{buf} =~ /"content":"x"/g;

is($count, $N, "all $N content events reached the client");
like($s->{buf}, qr/data: \[DONE\]\n\n\z/, 'and the stream ended with [DONE]');
cmp_ok(length $s->{buf}, '>', 10_000_000, 'more than 10 MB went through');
my $growth = $after - $before;
diag(sprintf "children RSS: %d kB before, %d kB after (%+d kB) for %.1f MB streamed",
     $before, $after, $growth, length($s->{buf}) / 1e6);
cmp_ok($growth, '<', 15_000, 'server memory grew by less than the stream itself');

# the same stream again: whatever the first one left was a high-water mark,
# not growth with the number of events
mock_script('primary', { sse => [ { raw => $events } ] });
stream_all(stream_open(KEY_DEFAULT, { %req }), 60);
my $again = children_rss_kb();
diag(sprintf "children RSS after a second 100,000-event stream: %d kB (%+d kB)",
     $again, $again - $after);
cmp_ok($again - $after, '<', 1024, 'a second long stream adds less than 1 MB');
