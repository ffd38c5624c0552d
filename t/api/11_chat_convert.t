# POST /v1/chat/completions served by an openai-responses account: the
# request converted to Responses, the answer (and stream) converted back,
# tool calls and usage included; and what the account's protocol and
# capabilities decide.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use TB::Test;

plan tests => 51;

my $K = KEY_DIALECTS;
my $T = JSON::PP::true;
sub last_req { mock_requests($_[0])->[-1] }
sub chunks { grep { ref $_ } stream_events($_[0]) }
sub text_of { join '', map { $_->{choices}[0]{delta}{content} // '' } grep { @{ $_->{choices} || [] } } @_ }

my $msgs = [ { role => 'system', content => 'Be terse.' }, { role => 'user', content => 'Say hi' } ];

# ---- non-stream ---------------------------------------------------------------------------
mock_reset();
my $r = chat($K, { model => 'native-model', messages => $msgs, max_tokens => 5, temperature => 0.2,
                   reasoning_effort => 'low', stop => ['x'], seed => 7 });
is($r->code, 200, 'chat -> Responses: 200');
my $j = json_of($r) || {};
like($j->{id} // '', qr/^chatcmpl-/, 'chat -> Responses: a chatcmpl id');
is($j->{object}, 'chat.completion', 'chat -> Responses: object chat.completion');
is($j->{choices}[0]{message}{content}, 'Hello from rnative', 'chat -> Responses: the text');
is($j->{choices}[0]{finish_reason}, 'stop', 'chat -> Responses: finish_reason stop');
is_deeply([ @{ $j->{usage} }{qw(prompt_tokens completion_tokens total_tokens)} ], [5, 7, 12],
          'chat -> Responses: usage in chat names');
my $up = last_req('rnative');
like($up->{path}, qr{/a/rnative/v1/responses$}, 'chat -> Responses: sent to .../responses');
my $b = $up->{json};
is($b->{model}, 'native-upstream', 'chat -> Responses: the account\'s model name');
is_deeply($b->{input}, [ { type => 'message', role => 'system', content => [ { type => 'input_text', text => 'Be terse.' } ] },
                         { type => 'message', role => 'user', content => [ { type => 'input_text', text => 'Say hi' } ] } ],
          'chat -> Responses: messages become input items');
is($b->{max_output_tokens}, 16, 'chat -> Responses: max_tokens -> max_output_tokens (at least 16)');
is_deeply($b->{reasoning}, { effort => 'low', summary => 'auto' }, 'chat -> Responses: reasoning_effort -> reasoning');
ok(!exists $b->{stop} && !exists $b->{seed} && !exists $b->{messages}, 'chat -> Responses: no chat-only fields');
is($b->{store}, JSON::PP::false, 'chat -> Responses: store false');
like(log_of($r), qr{account=rnative .*tokens=5/7/12 .*route=chat protocol=openai-responses}, 'chat -> Responses: usage notes');

# tools and a tool-call answer
mock_reset();
mock_script('rnative', { tool_call => { name => 'get_weather', arguments => '{"location":"Paris"}', call_id => 'call_p1' } });
my $tools = [ { type => 'function', function => { name => 'get_weather', description => 'Weather',
                parameters => { type => 'object', properties => { location => { type => 'string' } } } } } ];
$r = chat($K, { model => 'native-model', messages => $msgs, tools => $tools,
                tool_choice => { type => 'function', function => { name => 'get_weather' } } });
$j = json_of($r) || {};
is($j->{choices}[0]{finish_reason}, 'tool_calls', 'tool call: finish_reason tool_calls');
is($j->{choices}[0]{message}{content}, undef, 'tool call: content null');
is_deeply($j->{choices}[0]{message}{tool_calls}, [ { id => 'call_p1', type => 'function',
          function => { name => 'get_weather', arguments => '{"location":"Paris"}' } } ],
          'tool call: id is the call_id, arguments as a string');
$b = last_req('rnative')->{json};
is_deeply($b->{tools}, [ { type => 'function', name => 'get_weather', description => 'Weather', strict => JSON::PP::false,
          parameters => { type => 'object', properties => { location => { type => 'string' } } } } ],
          'tool call: tools flattened, strict stated');
is_deeply($b->{tool_choice}, { type => 'function', name => 'get_weather' }, 'tool call: tool_choice flattened');

# the SDK's tool result turn (assistant message echoed with refusal/annotations)
mock_reset();
my $turn = fixture('openai-sdk-chat-tool-result-turn')->{body};
$turn->{model} = 'native-model';
$r = chat($K, $turn);
is($r->code, 200, 'tool result turn: 200');
$b = last_req('rnative')->{json};
my @types = map { $_->{type} } @{ $b->{input} };
is_deeply(\@types, [qw(message function_call function_call_output)], 'tool result turn: message, call, output');
ok(!exists $b->{input}[1]{id}, 'tool result turn: the call has no id (Responses wants fc_ ids)');
is($b->{input}[1]{call_id}, $b->{input}[2]{call_id}, 'tool result turn: call and output share call_id');

# ---- streams ----------------------------------------------------------------------------------
mock_reset();
my $s = stream_all(stream_open($K, { model => 'native-model', messages => $msgs, stream => $T,
                                     stream_options => { include_usage => $T } }));
like($s->{head}, qr{^HTTP/1\.\d 200}, 'stream: 200');
my @c = chunks($s->{buf});
is($c[0]{choices}[0]{delta}{role}, 'assistant', 'stream: the first chunk has the role');
is(text_of(@c), 'Hello from rnative', 'stream: the text');
my ($fin) = grep { @{ $_->{choices} } && $_->{choices}[0]{finish_reason} } @c;
is($fin->{choices}[0]{finish_reason}, 'stop', 'stream: a finish chunk');
my ($u) = grep { ref $_->{usage} eq 'HASH' } @c;
is_deeply($u->{choices}, [], 'stream: the usage chunk has no choices');
is($u->{usage}{total_tokens}, 12, 'stream: usage totals');
is((stream_events($s->{buf}))[-1], '[DONE]', 'stream: ends with [DONE]');
unlike($s->{buf}, qr/^event:|response\./m, 'stream: nothing of the Responses stream leaks');

mock_reset();
$s = stream_all(stream_open($K, { model => 'native-model', messages => $msgs, stream => $T }));
ok(!grep({ ref $_->{usage} eq 'HASH' } chunks($s->{buf})), 'stream: no usage chunk when not asked');
like(log_of($s), qr{account=rnative .*tokens=5/7/12 .*stream=1}, 'stream: usage still recorded');

mock_reset();
mock_script('rnative', { tool_call => [ { name => 'a', arguments => '{"x":1}' }, { name => 'b', arguments => '{}' } ] });
$s = stream_all(stream_open($K, { model => 'native-model', messages => $msgs, stream => $T,
    tools => [ map { { type => 'function', function => { name => $_, parameters => { type => 'object' } } } } qw(a b) ] }));
@c = chunks($s->{buf});
my %args;
my @heads;
for my $ch (@c) {
    for my $tc (@{ $ch->{choices}[0]{delta}{tool_calls} || [] }) {
        push @heads, $tc if $tc->{id};
        $args{ $tc->{index} } .= $tc->{function}{arguments} // '';
    }
}
is_deeply([ map { [ $_->{index}, $_->{type}, $_->{function}{name} ] } @heads ], [ [0, 'function', 'a'], [1, 'function', 'b'] ],
          'stream tools: each call opens with index, id, type and name');
is_deeply(\%args, { 0 => '{"x":1}', 1 => '{}' }, 'stream tools: arguments assembled per index');
($fin) = grep { @{ $_->{choices} } && $_->{choices}[0]{finish_reason} } @c;
is($fin->{choices}[0]{finish_reason}, 'tool_calls', 'stream tools: finish_reason tool_calls');

# failure after the commit: a chat error chunk, never a Responses event
mock_reset();
mock_script('rnative', { sse_default => $T, abort_after => 5 });
$s = stream_all(stream_open($K, { model => 'native-model', messages => $msgs, stream => $T }));
my @all = stream_events($s->{buf});
ok(ref $all[-1] eq 'HASH' && $all[-1]{error}{code} eq 'stream_interrupted', 'broken stream: ends with an error chunk');
like(text_of(chunks($s->{buf})), qr/^Hello/, 'broken stream: the content sent before');
unlike($s->{buf}, qr/response\.failed/, 'broken stream: no Responses event');

mock_reset();
mock_script('rnative', { sse => [ { event => 'response.created', data => { type => 'response.created',
    sequence_number => 0, response => { id => 'resp_x', status => 'in_progress', output => [] } } },
    { event => 'response.failed', data => { type => 'response.failed', sequence_number => 1,
    response => { id => 'resp_x', status => 'failed', error => { code => 'server_error', message => 'no' } } } } ] });
mock_default('rnative', undef);
$s = stream_all(stream_open($K, { model => 'native-model', messages => $msgs, stream => $T }));
like($s->{head}, qr/ 502 /, 'response.failed before any content: not committed, a JSON 502 (no other account)');

# ---- protocol and capabilities ------------------------------------------------------------------
mock_reset();
$s = stream_all(stream_open($K, { model => 'bare-model', messages => $msgs, stream => $T }));
is(text_of(chunks($s->{buf})), 'Hello from bare', 'no capabilities: the stream works');
ok(!exists last_req('bare')->{json}{stream_options}, 'no stream_usage capability: include_usage not added');
mock_reset();
$s = stream_all(stream_open($K, { model => 'conv-model', messages => $msgs, stream => $T }));
ok(last_req('cchat')->{json}{stream_options}{include_usage}, 'stream_usage (the default for openai-chat): added');

my @ids = map { $_->{id} } @{ (json_of(get_models($K)) || {})->{data} || [] };
ok(!grep({ $_ eq 'claude-model' } @ids) && grep({ $_ eq 'native-model' } @ids),
   '/v1/models: a model only an unserved protocol offers is not listed');
error_is(chat($K, { model => 'claude-model', messages => $msgs }), 503, 'no_available_account',
         'an account whose protocol is not served yet is never sent a request');
is(scalar @{ mock_requests('claude') }, 0, 'nothing reached the anthropic account');
open my $el, '<', Apache::Test::vars('t_logs') . '/error_log' or die $!;
my @warn = grep { /TB21: account claude speaks anthropic-messages/ } <$el>;
ok(@warn >= 1, 'the unusable account is named in the error log');
my %per_pid;
$per_pid{ $_ =~ /\[pid (\d+)/ ? $1 : 0 }++ for @warn;
ok(!grep({ $_ > 1 } values %per_pid), 'once per process, not at every catalogue reload');

my ($rc, $out) = admin('--json', 'account', 'list');
my ($bare) = grep { $_->{name} eq 'bare' } @{ decode_json($out) };
is_deeply($bare->{capabilities}, [], 'tokenbay-admin: capabilities shown (none)');
my ($rn) = grep { $_->{name} eq 'rnative' } @{ decode_json($out) };
is_deeply($rn->{capabilities}, [qw(store compact)], 'tokenbay-admin: protocol defaults shown');
($rc, $out) = admin('account', 'set', 'bare', '--capabilities', 'stream_usage,bogus');
is($rc, 64, 'tokenbay-admin: an unknown capability is a usage error');
