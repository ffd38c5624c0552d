# The C unit tests, one TAP check each: t/unit/tb_unit (the library) and
# t/unit/tb_glue (the httpd glue's per-process state, against httpd stubs
# and a scripted database). For each binary, checks that the run was whole: the binary was not killed, exited 0, and
# its TAP is complete (the plan, every check numbered 1..N, then the final
# sentinel line). A crash or lost output fails this file instead of
# quietly running fewer checks.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Temp qw(tempfile);

use constant HARNESS_CHECKS => 7;

my @bins = qw(tb_unit tb_glue);
my @runs = map { run_binary($_) } @bins;

# The checks seen plus a fixed number per binary: short output cannot
# shorten the plan below the harness checks, and those fail when output
# went missing.
my $checks = 0;
$checks += @{ $_->{checks} } for @runs;
plan tests => HARNESS_CHECKS * @runs + $checks;

report($_) for @runs;

# Runs one binary; stdout is the TAP, stderr (what the suites print,
# sanitizer reports) is kept apart, so nothing on it can pass for a check,
# and shown on failure. No shell in between: $? is the binary's own wait
# status.
sub run_binary {
    my ($name) = @_;
    my $bin = ($ENV{TB_ROOT} || '.') . "/t/unit/$name";
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
    my (@checks, $plan, $plans);
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
    return { name => $name, out => \@out, err => $err, status => $status,
             checks => \@checks, plan => $plan, plans => $plans };
}

sub report {
    my ($run) = @_;
    my ($name, $status, $err) = @{$run}{qw(name status err)};
    my @out = @{ $run->{out} };
    my @checks = @{ $run->{checks} };
    my ($plan, $plans) = @{$run}{qw(plan plans)};
    my $last = @out ? $out[-1] : '';

    for my $c (@checks) {
        # the binaries write '#' as "\#" (doubling the backslashes before
        # it) so that no description reads as a TAP directive; Test::More
        # escapes it its own way
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
                 "$name ran and was not killed by a signal"
                 . ($signal ? " (signal $signal)" : ''));
    $whole &= is($signal ? "killed by signal $signal" : $exit, 0,
                 "$name exits 0");
    $whole &= ok(($plans // 0) == 1 && @out >= 2 && $out[-2] =~ /^1\.\.\d+$/,
                 "$name: one plan line 1..N, just before the end");
    $whole &= is(scalar(@checks), $plan // -1,
                 "$name: as many checks as the plan says");
    $whole &= ok(@checks && $in_order, "$name: checks numbered 1..N in order");
    $whole &= is($last, "# $name: all suites ran",
                 "$name: the output ends with the sentinel line");
    $whole &= is($sanitizer, '', "$name: no sanitizer report on stderr");
    unless ($whole) {
        my $from = @out > 60 ? @out - 60 : 0;
        diag("$name: exit status $exit, signal $signal; the last lines of stdout:\n",
             join("\n", @out[$from .. $#out]),
             "\nstderr:\n", $err eq '' ? "(empty)\n" : $err);
    }
}
