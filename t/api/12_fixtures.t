# Every captured client request (Codex turns, tool follow-ups, reasoning
# echoes, compaction turns; the openai SDK's chat and Responses calls) is
# accepted by both kinds of account, streamed and not, and the answers
# have the shape the clients need (clients.md §0, §3.4).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use JSON::PP;
use TB::Test;

my $K = KEY_DIALECTS;
my @responses = qw(codex-0.169-turn1-gpt-5.5 codex-0.169-tool-followup codex-0.169-custom-tool-followup
                   codex-0.169-reasoning-echo codex-0.169-local-compaction-request
                   openai-sdk-responses-nonstream openai-sdk-responses-stream-helper
                   openai-sdk-responses-function-call-output-turn);
my @chat = qw(openai-sdk-chat-nonstream openai-sdk-chat-stream-helper openai-sdk-chat-stream-include-usage
              openai-sdk-chat-tools openai-sdk-chat-tool-result-turn);
# [model, account, converted?]
my @targets = ([ 'native-model', 'rnative', 0 ], [ 'conv-model', 'cchat', 1 ]);

plan tests => 2 * (@responses * 2 * 5 + @chat * 2 * 3) + 4;

# What Codex and the SDK need of a Responses answer.
sub responses_ok {
    my ($stream, $buf, $what) = @_;
    if ($stream) {
        my @ev = resp_events($buf);
        my @done = grep { $_->{type} eq 'response.output_item.done' } @ev;
        my $last = $ev[-1] || {};
        is($ev[0]{type}, 'response.created', "$what: response.created first");
        ok(@done >= 1 && !grep({ !$_->{item}{id} || !$_->{item}{type} } @done),
           "$what: response.output_item.done with a full item for every item");
        is($last->{type}, 'response.completed', "$what: response.completed last");
        ok($last->{response}{id}, "$what: response.completed has an id");
        ok(defined $last->{response}{usage}{input_tokens} && !exists $last->{response}{usage}{prompt_tokens},
           "$what: usage in Responses names");
    }
    else {
        my $j = eval { decode_json($buf) } || {};
        is($j->{object}, 'response', "$what: a response object");
        ok(ref $j->{output} eq 'ARRAY' && @{ $j->{output} }, "$what: output is a non-empty array");
        is($j->{status}, 'completed', "$what: status completed");
        ok($j->{id}, "$what: an id");
        ok(defined $j->{usage}{input_tokens}, "$what: usage in Responses names");
    }
}

sub chat_ok {
    my ($stream, $buf, $what) = @_;
    if ($stream) {
        my @ev = stream_events($buf);
        my @c = grep { ref $_ && @{ $_->{choices} || [] } } @ev;
        is($c[0]{choices}[0]{delta}{role}, 'assistant', "$what: role in the first chunk");
        ok(grep({ $_->{choices}[0]{finish_reason} } @c), "$what: a finish_reason");
        is($ev[-1], '[DONE]', "$what: [DONE] last");
    }
    else {
        my $j = eval { decode_json($buf) } || {};
        is($j->{object}, 'chat.completion', "$what: a chat.completion");
        ok($j->{choices}[0]{message}{role}, "$what: a message");
        ok($j->{usage}{total_tokens}, "$what: usage");
    }
}

for my $t (@targets) {
    my ($model, $account, $conv) = @$t;
    for my $name (@responses) {
        for my $stream (0, 1) {
            my $body = fixture($name)->{body};
            $body->{model} = $model;
            $body->{stream} = $stream ? JSON::PP::true : JSON::PP::false;
            mock_reset();
            my $s = stream_all(stream_open($K, $body, path => '/v1/responses'));
            my $what = "$name via $account" . ($stream ? ' (stream)' : '');
            responses_ok($stream, $s->{buf}, $what);
        }
    }
    for my $name (@chat) {
        for my $stream (0, 1) {
            my $body = fixture($name)->{body};
            $body->{model} = $model;
            $body->{stream} = $stream ? JSON::PP::true : JSON::PP::false;
            mock_reset();
            my $s = stream_all(stream_open($K, $body));
            chat_ok($stream, $s->{buf}, "$name via $account" . ($stream ? ' (stream)' : ''));
        }
    }
}

# Codex's remote compaction (compaction_trigger) and the SDK's compact call
# go to the accounts that can do them; the converted account says why not.
my $body = fixture('codex-0.169-remote-v2-compaction-request')->{body};
$body->{model} = 'native-model';
mock_reset();
my $s = stream_all(stream_open($K, $body, path => '/v1/responses'));
like($s->{head}, qr/ 200 /, 'remote compaction v2 on a Responses account: passed through');
$body->{model} = 'conv-model';
$s = stream_all(stream_open($K, $body, path => '/v1/responses'));
like($s->{head}, qr/ 400 /, 'remote compaction v2 on a converted account: a clear 400');
$body = fixture('openai-sdk-responses-compact')->{body};
$body->{model} = 'native-model';
$s = stream_all(stream_open($K, $body, path => '/v1/responses/compact'));
like($s->{head}, qr/ 200 /, 'SDK compact on a Responses account: 200');
$body = fixture('codex-0.150-responses-compact-v1-request')->{body};
$body->{model} = 'native-model';
$s = stream_all(stream_open($K, $body, path => '/v1/responses/compact'));
like($s->{buf}, qr/"object":"response\.compaction"/, 'Codex 0.150 compact on a Responses account: the compaction object');
