# Tried as a client would: the official openai npm package (responses.create,
# responses.stream with its helpers, function calls and their outputs, chat
# create and stream) and the Codex CLI (a custom provider with wire_api =
# "responses", and the built-in provider pointed at the gateway with
# openai_base_url, which first tries the WebSocket transport), through the
# gateway to a mock upstream of each kind: an openai-chat account (the
# requests converted) and an openai-responses account (passed through).
# scripts/clients.sh installs the clients (t/clients/package-lock.json).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Path qw(make_path remove_tree);
use JSON::PP;
use TB::Test;

my $K = KEY_DIALECTS;
my $dir = Apache::Test::vars('t_dir') . '/clients';
my $codex = "$dir/node_modules/.bin/codex";
my $base = 'http://' . Apache::TestRequest::hostport() . '/v1';
my $run = ($ENV{TB_RUN_DIR} || '/tmp/tokenbay-test') . '/clients';
my @targets = ([ 'conv-model', 'cchat' ], [ 'native-model', 'rnative' ]);

plan tests => 2 + @targets * (15 + 4 + 4);

my $node = `command -v node 2>/dev/null`;
chomp $node;
ok($node && -x $node, 'node is installed (scripts/clients.sh)');
ok(-d "$dir/node_modules/openai" && -x $codex, 'the openai SDK and the Codex CLI are installed');

sub sdk {
    my ($model, $scenario) = @_;
    my $out = `node $dir/sdk.mjs $base $K $model $scenario 2>&1`;
    my ($line) = grep { /^\{/ } split /\n/, $out;
    my $j = eval { decode_json($line // '') } || { ok => 0, error => $out };
    diag("$scenario on $model: $j->{error}") unless $j->{ok};
    return $j;
}

for my $t (@targets) {
    my ($model, $acct) = @$t;
    my $j;

    mock_reset();
    $j = sdk($model, 'responses.create');
    ok($j->{ok}, "SDK responses.create via $acct");
    is($j->{result}{output_text}, "Hello from $acct", "SDK responses.create via $acct: output_text");
    is($j->{result}{usage}{total_tokens}, 12, "SDK responses.create via $acct: usage");

    $j = sdk($model, 'responses.stream');
    ok($j->{ok}, "SDK responses.stream via $acct: the accumulator accepts the stream");
    is($j->{result}{deltas}, "Hello from $acct", "SDK responses.stream via $acct: the delta events");
    is($j->{result}{output_text}, "Hello from $acct", "SDK responses.stream via $acct: finalResponse()");

    mock_script($acct, { tool_call => { name => 'get_weather', arguments => '{"city":"Oslo"}' } },
                       { text => 'It is 3C' });
    $j = sdk($model, 'responses.tools');
    ok($j->{ok}, "SDK function call and its output via $acct");
    like($j->{result}{call}{id} // '', qr/^fc_/, "SDK function call via $acct: an fc_ item id");
    is($j->{result}{call}{arguments}, '{"city":"Oslo"}', "SDK function call via $acct: arguments");
    is($j->{result}{second}{output_text}, 'It is 3C', "SDK function call via $acct: the next turn answers");

    $j = sdk($model, 'chat.create');
    ok($j->{ok} && $j->{result}{content} eq "Hello from $acct", "SDK chat create via $acct");

    mock_script($acct, { tool_call => { name => 'get_weather', arguments => '{"city":"Oslo"}' } });
    $j = sdk($model, 'chat.stream');
    ok($j->{ok}, "SDK chat.completions.stream helper via $acct");
    is($j->{result}{finish}, 'tool_calls', "SDK chat stream via $acct: finish_reason");
    is($j->{result}{tool_calls}[0]{arguments}, '{"city":"Oslo"}', "SDK chat stream via $acct: the tool call");
    is($j->{result}{usage}{total_tokens}, 12, "SDK chat stream via $acct: the usage chunk");
}

# ---- Codex ----------------------------------------------------------------------------
sub codex_home {
    my ($name, $config) = @_;
    my $home = "$run/$name";
    remove_tree($home);
    make_path("$home/cwd");
    open my $fh, '>', "$home/config.toml" or die $!;
    print $fh $config, <<'EOT';
approval_policy = "never"
sandbox_mode = "danger-full-access"

[features]
plugins = false
shell_snapshot = false

[analytics]
enabled = false
EOT
    close $fh;
    return $home;
}

# One `codex exec` turn with a tool call: the model (the mock) asks to run
# `echo hi-from-tool`, Codex runs it and sends the output back, the model
# answers "done". Returns (exit code, stdout).
sub codex_turn {
    my ($home, $acct, %env) = @_;
    mock_reset();
    mock_script($acct, { tool_call => { name => 'exec_command', arguments => '{"cmd":"echo hi-from-tool"}' } },
                       { text => 'done' });
    local @ENV{ keys %env } = values %env;
    local $ENV{CODEX_HOME} = $home;
    my $out = `cd $home/cwd && timeout 60 $codex exec --skip-git-repo-check 'run the echo command' </dev/null 2>$home/stderr`;
    my $rc = $? >> 8;
    diag("codex exit $rc: " . `tail -5 $home/stderr`) if $rc;
    return ($rc, $out);
}

for my $t (@targets) {
    my ($model, $acct) = @$t;
    my $home = codex_home("codex-custom-$acct", <<"EOT");
model = "$model"
model_provider = "tokenbay"

[model_providers.tokenbay]
name = "tokenbay"
base_url = "$base"
wire_api = "responses"
env_key = "TOKENBAY_API_KEY"
request_max_retries = 0
stream_max_retries = 0
EOT
    my ($rc, $out) = codex_turn($home, $acct, TOKENBAY_API_KEY => $K);
    is($rc, 0, "Codex (custom provider) via $acct: exits 0");
    like($out, qr/\bdone\b/, "Codex (custom provider) via $acct: prints the model's answer");
    my $reqs = mock_requests($acct);
    is(scalar @$reqs, 2, "Codex via $acct: two model calls (the tool call, then its result)");
    like($reqs->[-1]{body}, qr/hi-from-tool/, "Codex via $acct: the tool's output reached the model");
}

# GET /v1/responses answered 426 so far (the access log)
sub upgrades_426 {
    open my $fh, '<', Apache::Test::vars('t_logs') . '/tokenbay_log' or die $!;
    return scalar grep { m{"GET /v1/responses [^"]*" 426 .*outcome=rejected} } <$fh>;
}

# the built-in OpenAI provider: GET /v1/responses with Upgrade: websocket
# first; the gateway's 426 makes it fall back to HTTP at once
for my $t (@targets) {
    my ($model, $acct) = @$t;
    my $home = codex_home("codex-builtin-$acct", <<"EOT");
model = "$model"
openai_base_url = "$base"
EOT
    {
        local $ENV{CODEX_HOME} = $home;
        system("printf %s '$K' | $codex login --with-api-key >/dev/null 2>&1");
    }
    my $upgrades = upgrades_426();
    my ($rc, $out) = codex_turn($home, $acct);
    is($rc, 0, "Codex (built-in provider, openai_base_url) via $acct: exits 0");
    like($out, qr/\bdone\b/, "Codex (built-in provider) via $acct: the answer");
    cmp_ok(upgrades_426(), '>', $upgrades,
           "Codex (built-in provider) via $acct: asked for the WebSocket transport, got 426");
    like(mock_requests($acct)->[-1]{body}, qr/hi-from-tool/,
         "Codex (built-in provider) via $acct: the tool output went back");
}
