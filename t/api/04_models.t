# GET /v1/models: the OpenAI list shape, only what this key may use and
# what some active account of its group serves, aliases included.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use TB::Test;

plan tests => 12;

sub ids { my $j = json_of($_[0]) || {}; [ map { $_->{id} } @{ $j->{data} || [] } ] }

my $r = get_models(KEY_DEFAULT);
is($r->code, 200, 'models: 200');
like($r->header('Content-Type'), qr{^application/json}, 'models: JSON');
my $j = json_of($r);
is($j->{object}, 'list', 'models: object is list');
is_deeply(ids($r), [qw(doomed-model flaky-model gpt-4o gpt-4o-mini gpt-mini mini slow-model)],
          'default group: served models and aliases, sorted; not dead/orphan/other-group models');
my ($m) = grep { $_->{id} eq 'gpt-4o-mini' } @{ $j->{data} };
is_deeply($m, { id => 'gpt-4o-mini', object => 'model', created => 1721172741, owned_by => 'openai' },
          'entry shape: id, object, created, owned_by');
my ($a) = grep { $_->{id} eq 'mini' } @{ $j->{data} };
is($a->{owned_by}, 'openai', 'an alias shows its model\'s owner');

is_deeply(ids(get_models(KEY_LIMITED)), [qw(gpt-4o-mini gpt-mini mini)], 'key allowlist filters the list');
is_deeply(ids(get_models(KEY_RESTRICTED)), [qw(gpt-4o-mini gpt-mini mini)], 'group allowlist filters the list');
is_deeply(ids(get_models(KEY_OTHER)), [qw(gpt-4o-mini gpt-mini mini other-model)], 'another group sees its own accounts\' models');

error_is(get_models(undef), 401, 'missing_api_key', 'models without a key: 401');
error_is(get_models(KEY_DISABLED), 401, 'api_key_disabled', 'models with a disabled key: 401');
$r = chat(KEY_DEFAULT, {}, path => '/v1/models');
error_is($r, 405, 'method_not_allowed', 'POST on models: 405');
