# POST /v1/chat/completions, non-streaming: validation, model resolution,
# access control, and faithful forwarding to the chosen account.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use TB::Test;

plan tests => 47;

my $J = JSON::PP->new->canonical;
my $msgs = [ { role => 'user', content => 'hi' } ];
mock_reset();

# ---- the happy path ----------------------------------------------------------
my $r = chat(KEY_DEFAULT, { model => 'gpt-4o-mini', messages => $msgs });
is($r->code, 200, 'chat: 200');
like($r->header('Content-Type'), qr{^application/json}, 'chat: JSON content type');
my $j = json_of($r);
is($j->{object}, 'chat.completion', 'chat: a chat.completion object');
is($j->{choices}[0]{message}{content}, 'Hello from primary', 'chat: served by the highest priority account');
is($j->{usage}{total_tokens}, 12, 'chat: usage relayed');
my $up = mock_requests('primary')->[-1];
is($up->{path}, '/a/primary/v1/chat/completions', 'upstream URL is <base URL>/chat/completions');
is($up->{json}{model}, 'gpt-4o-mini-2024-07-18', 'model renamed to the account\'s upstream name');
like($up->{headers}{'content-type'}, qr{^application/json}, 'upstream gets a JSON content type');

# the body is forwarded byte for byte, but for the model value
my $raw = qq({ "model" : "gpt-4o-mini",\n  "messages": [{"role":"user","content":"caf\\u00e9 \xe2\x82\xac \\"q\\""}],\n  "temperature": 0.20, "top_p": 1e0, "x_custom": {"model": "keep-me"} });
$r = chat_raw($raw, key => KEY_DEFAULT);
is($r->code, 200, 'hand-formatted body: 200');
(my $expect = $raw) =~ s/"model" : "gpt-4o-mini"/"model" : "gpt-4o-mini-2024-07-18"/;
my $got = mock_requests('primary')->[-1]{body};
utf8::downgrade($got);   # the mock records bytes as latin-1 text
is($got, $expect, 'upstream body identical but for the top-level model value');

# aliases resolve to the canonical model, then to the account's name
$r = chat(KEY_DEFAULT, { model => 'mini', messages => $msgs });
is($r->code, 200, 'alias: 200');
is(mock_requests('primary')->[-1]{json}{model}, 'gpt-4o-mini-2024-07-18', 'alias: resolved and mapped');

# a model the account serves under its own name is left as is
$r = chat(KEY_DEFAULT, { model => 'gpt-4o', messages => $msgs });
is($r->code, 200, 'unmapped model: 200');
is(mock_requests('primary')->[-1]{json}{model}, 'gpt-4o', 'unmapped model: name unchanged');

# the captured OpenAI SDK request is accepted as sent
{
    open my $fh, '<', Apache::Test::vars('t_dir') . '/fixtures/openai-sdk-chat-nonstream.json' or die $!;
    local $/;
    my $cap = $J->decode(<$fh>);
    my %h = %{ $cap->{headers} };
    delete @h{qw(host content-length authorization connection)};
    $r = chat(KEY_DEFAULT, $cap->{body}, headers => \%h);
    is($r->code, 200, 'openai-sdk-chat-nonstream fixture: 200');
    is(json_of($r)->{object}, 'chat.completion', 'fixture: chat.completion back');
    my $fwd = mock_requests('primary')->[-1]{json};
    is($fwd->{max_completion_tokens}, $cap->{body}{max_completion_tokens}, 'fixture: fields forwarded');
    is_deeply($fwd->{messages}, $cap->{body}{messages}, 'fixture: messages forwarded');
}

# ---- usage and routing are visible to the log phase ----------------------------
{
    my $log = Apache::Test::vars('t_logs') . '/tokenbay_log';
    open my $fh, '<', $log or die "$log: $!";
    my @lines = <$fh>;
    my ($l) = grep { /model=gpt-4o-mini / && /outcome=ok/ } @lines;
    ok($l, 'access log has the request with its model and outcome');
    like($l // '', qr{account=primary up=gpt-4o-mini-2024-07-18 attempts=1}, 'log: account, upstream model, attempts');
    like($l // '', qr{tokens=5/7/12}, 'log: prompt/completion/total tokens');
}

# ---- bad requests ------------------------------------------------------------------
# every account the default key could reach: none may see a refused request
my @accounts = qw(primary backup doom-a doom-b elsewhere);
my %before = map { $_ => scalar @{ mock_requests($_) } } @accounts;
$r = chat_raw('{"model": "gpt-4o-mini", "messages": [', key => KEY_DEFAULT);
my $e = error_is($r, 400, 'invalid_json', 'truncated JSON: 400 invalid_json');
like($e->{message}, qr/not valid JSON/, 'malformed JSON message says so');

error_is(chat_raw('', key => KEY_DEFAULT), 400, 'invalid_json', 'empty body: 400');
error_is(chat_raw('[1,2]', key => KEY_DEFAULT), 400, 'invalid_body', 'JSON array body: 400');

$e = error_is(chat(KEY_DEFAULT, { messages => $msgs }), 400, 'invalid_value', 'missing model: 400');
is($e->{param}, 'model', 'missing model: param is model');
error_is(chat(KEY_DEFAULT, { model => 42, messages => $msgs }), 400, 'invalid_value', 'numeric model: 400');
error_is(chat(KEY_DEFAULT, { model => '', messages => $msgs }), 400, 'invalid_value', 'empty model: 400');
$e = error_is(chat(KEY_DEFAULT, { model => 'gpt-4o-mini' }), 400, 'invalid_value', 'missing messages: 400');
is($e->{param}, 'messages', 'missing messages: param is messages');
error_is(chat(KEY_DEFAULT, { model => 'gpt-4o-mini', messages => [] }), 400, 'invalid_value', 'empty messages: 400');
error_is(chat(KEY_DEFAULT, { model => 'gpt-4o-mini', messages => [ { content => 'x' } ] }), 400, 'invalid_value', 'message without role: 400');

# ---- size limit (TokenBayMaxBodySize 64K here) --------------------------------------
my $big = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'x' x (70 * 1024) } ] };
error_is(chat(KEY_DEFAULT, $big), 413, 'request_too_large', 'oversized body: 413');
{
    # without Content-Length (chunked), the limit still holds
    my $sock = Apache::TestRequest::vhost_socket();
    my $payload = $J->encode($big);
    print $sock "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        . KEY_DEFAULT . "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (my $i = 0; $i < length $payload; $i += 8192) {
        my $c = substr($payload, $i, 8192);
        print $sock sprintf("%x\r\n%s\r\n", length $c, $c);
    }
    print $sock "0\r\n\r\n";
    my $status = <$sock> // '';
    like($status, qr{^HTTP/1\.1 413 }, 'oversized chunked body: 413');
}
my %after = map { $_ => scalar @{ mock_requests($_) } } @accounts;
is_deeply(\%after, \%before,
          'the refused requests above (bad JSON, bad fields, too large) never reached an upstream');

# a large body within the default limit (16M under /single) goes through whole
{
    my $huge = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'y' x (3 * 1024 * 1024) } ] };
    mock_reset();
    my $r3 = chat(KEY_DEFAULT, $huge, path => '/single/v1/chat/completions');
    is($r3->code, 200, '3 MB body within the limit: 200');
    is(length(mock_requests('primary')->[-1]{body}), length($J->encode($huge)) + length('-2024-07-18'),
       '3 MB body: forwarded whole (model renamed)');
}

# ---- models and access ------------------------------------------------------------
$e = error_is(chat(KEY_DEFAULT, { model => 'no-such-model', messages => $msgs }), 404, 'model_not_found', 'unknown model: 404');
is($e->{param}, 'model', 'unknown model: param is model');
error_is(chat(KEY_LIMITED, { model => 'gpt-4o', messages => $msgs }), 403, 'model_not_allowed', 'key allowlist: 403');
is(chat(KEY_LIMITED, { model => 'mini', messages => $msgs })->code, 200, 'key allowlist admits aliases of allowed models');
error_is(chat(KEY_RESTRICTED, { model => 'gpt-4o', messages => $msgs }), 403, 'model_not_allowed', 'group allowlist: 403');
error_is(chat(KEY_DEFAULT, { model => 'other-model', messages => $msgs }), 403, 'model_not_allowed', 'model served only to another group: 403');
error_is(chat(KEY_DEFAULT, { model => 'dead-model', messages => $msgs }), 503, 'no_available_account', 'only a disabled account serves it: 503');

# ---- routes ----------------------------------------------------------------------
$r = Apache::TestRequest::GET('/v1/chat/completions', Authorization => 'Bearer ' . KEY_DEFAULT);
error_is($r, 405, 'method_not_allowed', 'GET on chat/completions: 405');
error_is(chat(KEY_DEFAULT, { model => 'gpt-4o-mini', messages => $msgs }, path => '/v1/nope'), 404, 'unknown_url', 'unknown URL: 404');
