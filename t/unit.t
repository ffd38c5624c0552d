# The library's C unit tests (t/unit/tb_unit), one TAP check each.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);

my $bin = ($ENV{TB_ROOT} || '.') . '/t/unit/tb_unit';
my @lines = `$bin 2>&1`;
my $rc = $? >> 8;
my @checks = grep { /^(not )?ok \d+/ } @lines;

plan tests => scalar(@checks) + 1;
for my $l (@checks) {
    chomp $l;
    my ($not, $desc) = $l =~ /^(not )?ok \d+ - (.*)$/;
    ok(!$not, $desc // $l);
}
is($rc, 0, 'unit test binary exits 0') or diag(join '', @lines);
