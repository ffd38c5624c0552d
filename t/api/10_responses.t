# POST /v1/responses on both kinds of account: passed through to an
# openai-responses account (bytes touched, not rebuilt), converted for an
# openai-chat account (a complete Response object, or a well-formed event
# stream), with failover before the commit and response.failed after it.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use TB::Test;

plan tests => 115;

my $K = KEY_DIALECTS;
my $JSON = JSON::PP->new->canonical;
my $T = JSON::PP::true;
sub resp { chat($K, $_[0], path => '/v1/responses', %{ $_[1] || {} }) }
sub last_req { mock_requests($_[0])->[-1] }
sub count { scalar @{ mock_requests($_[0]) } }
sub sopen { stream_open($K, $_[0], path => '/v1/responses') }
sub types { map { $_->{type} } @_ }

# The rules the official SDK's accumulator enforces on a Responses stream
# (conversions.md §6C): returns a list of violations.
sub check_stream {
    my (@ev) = @_;
    my (@bad, %items, %parts, @done_items);
    push @bad, 'first event is not response.created' unless @ev && $ev[0]{type} eq 'response.created';
    for my $i (0 .. $#ev) {
        my $e = $ev[$i];
        push @bad, "event $i: sequence_number " . ($e->{sequence_number} // 'none') . " != $i"
            unless defined $e->{sequence_number} && $e->{sequence_number} == $i;
        my $t = $e->{type};
        if ($t eq 'response.output_item.added') { $items{ $e->{output_index} } = $e->{item} }
        elsif ($t =~ /^response\.(output_text|refusal)\.delta$/) {
            push @bad, "$t before its part" unless $parts{"$e->{output_index}:$e->{content_index}"};
        }
        elsif ($t eq 'response.content_part.added') {
            push @bad, "part before its item" unless $items{ $e->{output_index} };
            $parts{"$e->{output_index}:$e->{content_index}"} = 1;
        }
        elsif ($t =~ /^response\.(function_call_arguments|custom_tool_call_input|reasoning_summary_text)\.delta$/) {
            push @bad, "$t before its item" unless $items{ $e->{output_index} };
        }
        elsif ($t eq 'response.function_call_arguments.done') {
            push @bad, 'arguments.done without name or arguments'
                unless defined $e->{name} && defined $e->{arguments};
        }
        elsif ($t eq 'response.output_item.done') {
            push @bad, "item done before added" unless $items{ $e->{output_index} };
            $done_items[ $e->{output_index} ] = $e->{item};
        }
    }
    my $last = $ev[-1] || {};
    push @bad, "last event is $last->{type}" unless ($last->{type} // '') =~ /^response\.(completed|incomplete|failed)$/;
    if (($last->{type} // '') =~ /completed|incomplete/) {
        my $r = $last->{response};
        push @bad, 'terminal response without id' unless $r->{id};
        push @bad, 'terminal output differs from the output_item.done items'
            unless $JSON->encode($r->{output}) eq $JSON->encode([ grep { defined } @done_items ]);
        push @bad, 'usage not in Responses names'
            unless ref $r->{usage} eq 'HASH' && defined $r->{usage}{input_tokens}
                && defined $r->{usage}{output_tokens} && defined $r->{usage}{total_tokens};
    }
    return @bad;
}

# ---- pass-through to an openai-responses account ---------------------------------------
mock_reset();
my $raw = '{ "input" : "Say \u00e9 hi",  "model":"native-model", "x_big":1e400,'
        . '"x_int":123456789012345678901234567890, "metadata":{"k":"v"} }';
my $canned = '{"id":"resp_canned1","object":"response","status":"completed","model":"native-upstream",'
           . '"output":[{"type":"message","id":"msg_c1","status":"completed","role":"assistant",'
           . '"content":[{"type":"output_text","text":"canned","annotations":[]}]}],'
           . '"usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":3},"output_tokens":22,'
           . '"output_tokens_details":{"reasoning_tokens":4},"total_tokens":33},"x_extra":[1,2]}';
mock_script('rnative', { body => $canned });
my $r = resp($raw);
is($r->code, 200, 'pass-through: 200');
is($r->content, $canned, 'pass-through: the answer is relayed byte for byte');
my $up = last_req('rnative');
(my $want = $raw) =~ s/"native-model"/"native-upstream"/;
is($up->{body}, $want, 'pass-through: the upstream got the client\'s bytes with only the model renamed');
like($up->{path}, qr{^/a/rnative/v1/responses$}, 'pass-through: POST .../responses');
is($up->{headers}{authorization}, 'Bearer sk-rnative-secret-kkkk1111', 'pass-through: the account\'s credential');
like(log_of($r), qr{account=rnative .*tokens=11/22/33 cached=3 reasoning=4 route=responses protocol=openai-responses},
     'pass-through: usage notes from Responses names');

# a body too large to go with the headers is sent in pieces, still exact
mock_reset();
my $big = '{"model":"native-model","input":"' . ('x\u00e9 ' x 7000) . '","x":1}';
$r = resp($big);
is($r->code, 200, 'pass-through, 60+ KB body: 200');
($want = $big) =~ s/"native-model"/"native-upstream"/;
ok(last_req('rnative')->{body} eq $want, 'pass-through, 60+ KB body: the upstream got the exact bytes, model renamed');

# streamed pass-through: events verbatim, event: lines and sequence numbers kept
mock_reset();
my @sse = (
    { event => 'response.created', data => { type => 'response.created', sequence_number => 0,
      response => { id => 'resp_up1', object => 'response', status => 'in_progress', output => [] } } },
    { event => 'response.in_progress', data => { type => 'response.in_progress', sequence_number => 1,
      response => { id => 'resp_up1', status => 'in_progress' } } },
    { event => 'response.output_item.added', data => { type => 'response.output_item.added', sequence_number => 2,
      output_index => 0, item => { id => 'msg_u', type => 'message', role => 'assistant', content => [] } } },
    { event => 'response.content_part.added', data => { type => 'response.content_part.added', sequence_number => 3,
      item_id => 'msg_u', output_index => 0, content_index => 0, part => { type => 'output_text', text => '' } } },
    { event => 'response.output_text.delta', data => { type => 'response.output_text.delta', sequence_number => 4,
      item_id => 'msg_u', output_index => 0, content_index => 0, delta => 'Hi' } },
    { event => 'response.completed', data => { type => 'response.completed', sequence_number => 5,
      response => { id => 'resp_up1', status => 'completed', output => [],
      usage => { input_tokens => 2, output_tokens => 3, total_tokens => 5 } } } },
);
mock_script('rnative', { sse => \@sse });
my $s = stream_all(sopen({ model => 'native-model', input => 'hi', stream => $T }));
like($s->{head}, qr{^HTTP/1\.\d 200}, 'pass-through stream: 200');
like($s->{head}, qr{^Content-Type: text/event-stream}mi, 'pass-through stream: text/event-stream');
my $expect = join '', map { "event: $_->{event}\ndata: " . JSON::PP->new->encode($_->{data}) . "\n\n" } @sse;
my @got = sse_blocks($s->{buf});
is(scalar(@got), 6, 'pass-through stream: every event arrives');
is_deeply([ map { $_->{event} } @got ], [ map { $_->{event} } @sse ], 'pass-through stream: event: lines kept');
is_deeply([ map { $_->{data}{sequence_number} } @got ], [0 .. 5], 'pass-through stream: sequence numbers kept');
unlike($s->{buf}, qr/\[DONE\]/, 'pass-through stream: no [DONE] added');
like(log_of($s), qr{account=rnative .*outcome=ok .*tokens=2/3/5 .*stream=1}, 'pass-through stream: usage from response.completed');

# ---- converted: Responses client, chat account -------------------------------------------
mock_reset();
$r = resp({ model => 'conv-model', instructions => 'Be brief.', input => 'Say hi', max_output_tokens => 64,
            temperature => 0.5, metadata => { t => '1' }, store => JSON::PP::false });
is($r->code, 200, 'converted: 200');
like($r->header('Content-Type'), qr{^application/json}, 'converted: JSON');
my $j = json_of($r) || {};
like($j->{id} // '', qr/^resp_/, 'converted: a resp_ id');
is($j->{object}, 'response', 'converted: object response');
is($j->{status}, 'completed', 'converted: status completed');
is($j->{model}, 'conv-upstream', 'converted: the model that answered');
is($j->{output}[0]{type}, 'message', 'converted: a message item');
like($j->{output}[0]{id} // '', qr/^msg_/, 'converted: a msg_ item id');
is($j->{output}[0]{content}[0]{text}, 'Hello from cchat', 'converted: the text');
is_deeply($j->{output}[0]{content}[0]{annotations}, [], 'converted: annotations present');
is_deeply($j->{usage}, { input_tokens => 5, input_tokens_details => { cached_tokens => 0, cache_write_tokens => 0 },
                         output_tokens => 7, output_tokens_details => { reasoning_tokens => 0 }, total_tokens => 12 },
          'converted: usage in Responses names');
is($j->{instructions}, 'Be brief.', 'converted: instructions echoed');
is($j->{temperature}, 0.5, 'converted: temperature echoed');
ok(exists $j->{$_}, "converted: '$_' present") for qw(tools tool_choice parallel_tool_calls text top_p error incomplete_details);
$up = last_req('cchat')->{json};
like(last_req('cchat')->{path}, qr{^/a/cchat/v1/chat/completions$}, 'converted: sent to .../chat/completions');
is($up->{model}, 'conv-upstream', 'converted: the account\'s model name');
is_deeply($up->{messages}, [ { role => 'system', content => 'Be brief.' }, { role => 'user', content => 'Say hi' } ],
          'converted: instructions become a system message, input a user message');
is($up->{max_completion_tokens}, 64, 'converted: max_output_tokens -> max_completion_tokens');
is($up->{temperature}, 0.5, 'converted: temperature');
ok(!exists $up->{input} && !exists $up->{instructions}, 'converted: no Responses fields sent to chat');
like(log_of($r), qr{account=cchat .*tokens=5/7/12 .*route=responses protocol=openai-chat}, 'converted: usage notes');

# converted stream
mock_reset();
$s = stream_all(sopen({ model => 'conv-model', input => 'hi', stream => $T }));
like($s->{head}, qr{^HTTP/1\.\d 200}, 'converted stream: 200');
my @blocks = sse_blocks($s->{buf});
my @ev = map { $_->{data} } @blocks;
is_deeply([ check_stream(@ev) ], [], 'converted stream: satisfies the SDK accumulator\'s rules');
ok(!grep({ !defined $_->{event} || $_->{event} ne $_->{data}{type} } @blocks), 'converted stream: every event has its event: line');
is(join('', map { $_->{delta} } grep { $_->{type} eq 'response.output_text.delta' } @ev), 'Hello from cchat',
   'converted stream: the text in deltas');
is($ev[-1]{type}, 'response.completed', 'converted stream: ends with response.completed');
is($ev[-1]{response}{usage}{total_tokens}, 12, 'converted stream: usage in response.completed');
unlike($s->{buf}, qr/\[DONE\]|chat\.completion/, 'converted stream: no chat chunk, no [DONE]');
ok(last_req('cchat')->{json}{stream_options}{include_usage}, 'converted stream: usage asked of the chat account');

# tool calls from a chat account: function_call items with their own ids
mock_reset();
mock_script('cchat', { tool_call => { name => 'get_weather', arguments => '{"city":"Oslo"}', call_id => 'call_abc' },
                       reasoning => 'Need weather.' });
my $tools = [ { type => 'function', name => 'get_weather', parameters => { type => 'object', properties => { city => { type => 'string' } } } } ];
$s = stream_all(sopen({ model => 'conv-model', input => 'weather?', tools => $tools, stream => $T }));
@ev = resp_events($s->{buf});
is_deeply([ check_stream(@ev) ], [], 'tool call stream: satisfies the accumulator\'s rules');
my @done = map { $_->{item} } grep { $_->{type} eq 'response.output_item.done' } @ev;
is_deeply([ map { $_->{type} } @done ], [qw(reasoning function_call)], 'tool call stream: a reasoning item, then the call');
is($done[0]{summary}[0]{text}, 'Need weather.', 'tool call stream: reasoning text in the summary');
is($done[1]{call_id}, 'call_abc', 'tool call stream: call_id is the chat tool call id');
like($done[1]{id} // '', qr/^fc_/, 'tool call stream: the item id is an fc_ id, not the call id');
is($done[1]{arguments}, '{"city":"Oslo"}', 'tool call stream: full arguments');
my ($argsdone) = grep { $_->{type} eq 'response.function_call_arguments.done' } @ev;
is($argsdone->{name}, 'get_weather', 'tool call stream: arguments.done has the name');
$up = last_req('cchat')->{json};
is_deeply($up->{tools}, [ { type => 'function', function => { name => 'get_weather',
          parameters => { type => 'object', properties => { city => { type => 'string' } } } } } ],
          'tool call stream: tools nested for chat');

# the next turn: the call and its output go back as a chat tool pair
mock_reset();
$r = resp({ model => 'conv-model', tools => $tools, input => [
    { role => 'user', content => 'weather?' },
    { type => 'reasoning', id => 'rs_1', summary => [ { type => 'summary_text', text => 'x' } ], encrypted_content => 'enc' },
    { type => 'function_call', id => 'fc_1', call_id => 'call_abc', name => 'get_weather', arguments => '{"city":"Oslo"}', status => 'completed' },
    { type => 'web_search_call', id => 'ws_1', status => 'completed' },
    { type => 'function_call_output', call_id => 'call_abc', output => '{"temp":3}' } ] });
is($r->code, 200, 'tool result turn: 200');
$up = last_req('cchat')->{json};
is_deeply($up->{messages}, [
    { role => 'user', content => 'weather?' },
    { role => 'assistant', content => undef, tool_calls => [ { id => 'call_abc', type => 'function',
      function => { name => 'get_weather', arguments => '{"city":"Oslo"}' } } ] },
    { role => 'tool', tool_call_id => 'call_abc', content => '{"temp":3}' } ],
    'tool result turn: call then result, reasoning and hosted-tool items left out');

# a custom (free-form) tool: a function for chat, a custom_tool_call back
mock_reset();
mock_script('cchat', { tool_call => { name => 'apply_patch', arguments => '{"input":"*** Begin Patch\n*** End Patch\n"}' } });
my $custom = [ { type => 'custom', name => 'apply_patch', description => 'Edit files.',
                 format => { type => 'grammar', syntax => 'lark', definition => 'start: x' } } ];
$s = stream_all(sopen({ model => 'conv-model', input => 'patch', tools => $custom, stream => $T }));
@ev = resp_events($s->{buf});
is_deeply([ check_stream(@ev) ], [], 'custom tool stream: accumulator rules');
@done = map { $_->{item} } grep { $_->{type} eq 'response.output_item.done' } @ev;
is($done[0]{type}, 'custom_tool_call', 'custom tool: comes back as a custom_tool_call');
is($done[0]{input}, "*** Begin Patch\n*** End Patch\n", 'custom tool: its input unwrapped');
is(last_req('cchat')->{json}{tools}[0]{function}{parameters}{properties}{input}{type}, 'string',
   'custom tool: sent to chat as a function taking {"input": string}');

# finish_reason length -> response.incomplete
mock_reset();
mock_script('cchat', { finish => 'length' });
$s = stream_all(sopen({ model => 'conv-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is($ev[-1]{type}, 'response.incomplete', 'length: ends with response.incomplete');
is($ev[-1]{response}{incomplete_details}{reason}, 'max_output_tokens', 'length: reason max_output_tokens');
mock_script('cchat', { finish => 'length' });
$j = json_of(resp({ model => 'conv-model', input => 'hi' }));
is($j->{status}, 'incomplete', 'length, non-stream: status incomplete');

# ---- failover before the commit, across dialects ------------------------------------------
mock_reset();
mock_script('rprimary', { status => 500, body => { error => { message => 'down', type => 'server_error' } } });
$r = resp({ model => 'resp-model', input => 'hi' });
is($r->code, 200, 'failover: 500 from the Responses account, 200 from the chat one');
is(json_of($r)->{output}[0]{content}[0]{text}, 'Hello from rbackup', 'failover: converted answer of the backup');
like(log_of($r), qr/account=rbackup .*attempts=2/, 'failover: two attempts');

mock_reset();
mock_script('rprimary', { sse => [ @sse[0, 1, 2, 3] ], abort_after => 4 });
$s = stream_all(sopen({ model => 'resp-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is_deeply([ check_stream(@ev) ], [], 'failover stream: a clean stream from the backup');
is(scalar(grep { $_->{type} eq 'response.created' } @ev), 1, 'failover stream: the dead account\'s held events never reached the client');
ok(!grep({ ($_->{response}{id} // '') eq 'resp_up1' } @ev), 'failover stream: nothing of the first account');
is(join('', map { $_->{delta} } grep { $_->{type} eq 'response.output_text.delta' } @ev), 'Hello from rbackup',
   'failover stream: the backup\'s text');

mock_reset();
mock_script('rprimary', { sse => [ $sse[0], { event => 'error', data => { type => 'error', code => 'server_error',
    message => 'overloaded', sequence_number => 1 } } ] });
$s = stream_all(sopen({ model => 'resp-model', input => 'hi', stream => $T }));
is(join('', map { $_->{delta} // '' } resp_events($s->{buf})), 'Hello from rbackup', 'error event before content: failover');

# the request's own error before any content: the client gets it (Codex
# compacts on context_length_exceeded), no other account is asked
mock_reset();
mock_script('rprimary', { sse => [ $sse[0], { event => 'response.failed', data => { type => 'response.failed',
    sequence_number => 1, response => { id => 'resp_up1', status => 'failed', output => [],
    error => { code => 'context_length_exceeded', message => 'Your input exceeds the context window.' } } } } ] });
$s = stream_all(sopen({ model => 'resp-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
like($s->{head}, qr/ 200 /, 'context_length_exceeded before content: the stream is answered');
is($ev[-1]{type}, 'response.failed', 'context_length_exceeded before content: response.failed reaches the client');
is($ev[-1]{response}{error}{code}, 'context_length_exceeded', 'context_length_exceeded before content: its code');
is(count('rbackup'), 0, 'context_length_exceeded before content: no failover');

# ---- after the commit: response.failed, never a chat chunk ----------------------------------
mock_reset();
mock_script('rnative', { sse => [ @sse[0 .. 4] ], abort_after => 5 });
$s = stream_all(sopen({ model => 'native-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is($ev[-1]{type}, 'response.failed', 'pass-through broken after content: ends with response.failed');
is($ev[-1]{response}{status}, 'failed', 'pass-through broken: status failed');
is($ev[-1]{response}{error}{code}, 'stream_interrupted', 'pass-through broken: error code');
is($ev[-1]{response}{id}, 'resp_up1', 'pass-through broken: the upstream\'s response id');
is($ev[-1]{sequence_number}, 5, 'pass-through broken: numbered after the upstream\'s last event');
ok($s->{eof}, 'pass-through broken: the connection ends cleanly');
like(log_of($s), qr/account=rnative .*outcome=interrupted/, 'pass-through broken: logged as interrupted');

mock_reset();
mock_script('rnative', { sse => [ @sse[0 .. 4], { event => 'error', data => { type => 'error', code => 'server_error',
    message => 'boom', sequence_number => 5 } } ] });
$s = stream_all(sopen({ model => 'native-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is_deeply([ types(@ev[-2, -1]) ], [qw(error response.failed)], 'an error event after content: passed on, then response.failed');
is($ev[-1]{sequence_number}, 6, 'the added response.failed follows the upstream\'s numbering');

mock_reset();
mock_script('cchat', { sse => [ chunk('Hel') ], abort_after => 1 });
$s = stream_all(sopen({ model => 'conv-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is($ev[-1]{type}, 'response.failed', 'converted broken after content: response.failed');
is($ev[-1]{response}{error}{code}, 'stream_interrupted', 'converted broken: error code');
is_deeply([ grep { $_ ne 'response.failed' } check_stream(@ev) ], [], 'converted broken: otherwise well formed');
unlike($s->{buf}, qr/chat\.completion|"error":\{"message"/, 'converted broken: no chat chunk');

mock_reset();
mock_script('cchat', { sse => [ chunk('Hel'), { data => { error => { message => 'quota', type => 'insufficient_quota', code => 'insufficient_quota' } } } ] });
$s = stream_all(sopen({ model => 'conv-model', input => 'hi', stream => $T }));
@ev = resp_events($s->{buf});
is($ev[-1]{response}{error}{code}, 'insufficient_quota', 'converted upstream error after content: its code in response.failed');

# ---- what only the provider's own server state can do -------------------------------------
mock_reset();
$r = resp({ model => 'conv-model', input => 'hi', previous_response_id => 'resp_123' });
error_is($r, 400, 'unsupported_parameter', 'previous_response_id on a converted account: 400');
is(json_of($r)->{error}{param}, 'previous_response_id', 'previous_response_id: param named');
is(count('cchat'), 0, 'previous_response_id: nothing sent to the chat account');
$r = resp({ model => 'native-model', input => 'hi', previous_response_id => 'resp_123' });
is($r->code, 200, 'previous_response_id on a Responses account with store: passed through');
is(last_req('rnative')->{json}{previous_response_id}, 'resp_123', 'previous_response_id: forwarded');
error_is(resp({ model => 'nostore-model', input => 'hi', previous_response_id => 'r' }), 400, 'unsupported_parameter',
         'previous_response_id on a Responses account without store: 400');
$r = resp({ model => 'resp-model', input => 'hi', previous_response_id => 'resp_1' });
is($r->code, 200, 'previous_response_id where one account can: 200');
is(count('rbackup'), 0, 'previous_response_id: the chat account is not used');
error_is(resp({ model => 'conv-model', input => [ { type => 'message', role => 'user', content => 'x' },
         { type => 'compaction_trigger' } ] }), 400, 'unsupported_parameter', 'compaction_trigger on a converted account: 400');

$r = resp({ model => 'conv-model', input => 'hi' }, { path => '/v1/responses/compact' });
error_is($r, 400, 'unsupported_route', 'compact on a converted account: 400 unsupported_route, not 404');
mock_reset();
$r = resp({ model => 'native-model', input => [ { role => 'user', content => 'Hello' } ] }, { path => '/v1/responses/compact' });
is($r->code, 200, 'compact on a Responses account: passed through');
is(json_of($r)->{object}, 'response.compaction', 'compact: the account\'s compaction object');
like(last_req('rnative')->{path}, qr{/responses/compact$}, 'compact: POST .../responses/compact');
error_is(resp({ model => 'nostore-model', input => 'x' }, { path => '/v1/responses/compact' }), 400, 'unsupported_route',
         'compact on a Responses account without the capability: 400');

# ---- requests the route refuses ---------------------------------------------------------------
error_is(resp('{"model":"conv-model","input":"hi"'), 400, 'invalid_json', 'malformed JSON: 400');
error_is(resp({ input => 'hi' }), 400, 'invalid_value', 'no model: 400');
error_is(resp({ model => 'conv-model' }), 400, 'invalid_value', 'no input: 400');
error_is(resp({ model => 'conv-model', input => 5 }), 400, 'invalid_value', 'input a number: 400');
error_is(resp({ model => 'no-such-model', input => 'x' }), 404, 'model_not_found', 'unknown model: 404');
error_is(resp({ model => 'claude-model', input => 'x' }), 503, 'no_available_account',
         'only an account whose protocol is not served yet: 503');
$r = Apache::TestRequest::GET('/v1/responses', Authorization => "Bearer $K", Upgrade => 'websocket',
                              Connection => 'Upgrade', 'Sec-WebSocket-Version' => 13,
                              'OpenAI-Beta' => 'responses_websockets=2026-02-06');
error_is($r, 426, 'websocket_not_supported', 'WebSocket upgrade: 426 so Codex falls back to HTTP at once');
$r = Apache::TestRequest::GET('/v1/responses', Authorization => "Bearer $K");
error_is($r, 405, 'method_not_allowed', 'GET without upgrade: 405');
