# The library's C unit tests (t/unit/tb_unit), one TAP check each, and
# checks that the run was whole: the binary was not killed, exited 0, and
# its TAP is complete (the plan, every check numbered 1..N, then the final
# sentinel line). A crash or lost output fails this file instead of
# quietly running fewer checks.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Temp qw(tempfile);

use constant SENTINEL => '# tb_unit: all suites ran';
use constant HARNESS_CHECKS => 7;

my $bin = ($ENV{TB_ROOT} || '.') . '/t/unit/tb_unit';

# stdout is the TAP; stderr (what the suites print, sanitizer reports) is
# kept apart, so nothing on it can pass for a check, and shown on failure.
# No shell in between: $? is the binary's own wait status.
my ($errfh, $errfile) = tempfile(UNLINK => 1);
open(my $saved, '>&', \*STDERR) or die "dup stderr: $!";
open(STDERR, '>&', $errfh) or die "redirect stderr: $!";
my $pid = open(my $tap, '-|', $bin);
my $open_error = $!;
open(STDERR, '>&', $saved) or die "restore stderr: $!";
my (@out, $status);
if ($pid) {
    @out = <$tap>;
    close $tap;
    $status = $?;
}
else {
    @out = ("cannot run $bin: $open_error\n");
    $status = -1;
}
chomp @out;
my $err = do { local $/; seek($errfh, 0, 0); <$errfh> } // '';

# the checks, each with the "#   failed at" lines that follow it
my (@checks, $plan, $plans, $last);
for my $l (@out) {
    if ($l =~ /^(not )?ok\b/) {
        my (undef, $num, $desc) = $l =~ /^(not )?ok (\d+) - (.*)$/;
        push @checks, { ok => $l !~ /^not /, num => $num,
                        desc => $desc // $l, diag => [] };
    }
    elsif ($l =~ /^1\.\.(\d+)$/) {
        $plan = $1;
        ++$plans;
    }
    elsif ($l =~ /^#   / && @checks) {
        push @{ $checks[-1]{diag} }, $l;
    }
}
$last = @out ? $out[-1] : '';

# The checks seen plus a fixed number: short output cannot shorten the
# plan below the harness checks, and those fail when output went missing.
plan tests => @checks + HARNESS_CHECKS;

for my $c (@checks) {
    # tb_unit writes '#' as "\#" (doubling the backslashes before it) so
    # that no description reads as a TAP directive; Test::More escapes
    # it its own way
    (my $desc = $c->{desc})
        =~ s{((?:\\\\)*)\\#}{'\\' x (length($1) / 2) . '#'}ge;
    next if ok($c->{ok}, $desc);
    diag(join "\n", @{ $c->{diag} }) if @{ $c->{diag} };
}

my $signal = $status == -1 ? 0 : $status & 127;
my $exit = $status == -1 ? -1 : $status >> 8;
my @numbers = map { $_->{num} // -1 } @checks;
my $in_order = !grep { $numbers[$_] != $_ + 1 } 0 .. $#numbers;
my $sanitizer = join "\n", grep {
    /ERROR: (?:Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error:/
} split /\n/, $err;

my $whole = 1;
$whole &= ok($status != -1 && !$signal,
             "unit binary ran and was not killed by a signal"
             . ($signal ? " (signal $signal)" : ''));
$whole &= is($signal ? "killed by signal $signal" : $exit, 0,
             'unit binary exits 0');
$whole &= ok(($plans // 0) == 1 && @out >= 2 && $out[-2] =~ /^1\.\.\d+$/,
             'one plan line 1..N, just before the end');
$whole &= is(scalar(@checks), $plan // -1,
             'as many checks as the plan says');
$whole &= ok(@checks && $in_order, 'checks numbered 1..N in order');
$whole &= is($last, SENTINEL, 'the output ends with the sentinel line');
$whole &= is($sanitizer, '', 'no sanitizer report on stderr');
unless ($whole) {
    my $from = @out > 60 ? @out - 60 : 0;
    diag("exit status $exit, signal $signal; the last lines of stdout:\n",
         join("\n", @out[$from .. $#out]),
         "\nstderr:\n", $err eq '' ? "(empty)\n" : $err);
}
