# Database changes take effect within the cache TTL (2 s in the test
# config), without a restart.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Time::HiRes qw(sleep);
use TB::Test;

# caches are per process: one keep-alive connection keeps us in one child
Apache::TestRequest::user_agent(reset => 1, keep_alive => 1);

plan tests => 12;

my $body = { model => 'gpt-4o-mini', messages => [ { role => 'user', content => 'hi' } ] };
mock_reset();

is(chat(KEY_TOGGLE, $body)->code, 200, 'key works');
my ($rc) = admin('key', 'disable', '--key', KEY_TOGGLE);
is($rc, 0, 'tokenbay-admin disables the key');
sleep 2.5;
error_is(chat(KEY_TOGGLE, $body), 401, 'api_key_disabled', 'disabled key refused after the TTL');
($rc) = admin('key', 'enable', '--key', KEY_TOGGLE);
sleep 2.5;
is(chat(KEY_TOGGLE, $body)->code, 200, 're-enabled key works again after the TTL');

# accounts: take primary out of service, traffic moves to backup
($rc) = admin('account', 'disable', 'primary');
is($rc, 0, 'tokenbay-admin disables an account');
sleep 2.5;
is(json_of(chat(KEY_DEFAULT, $body))->{choices}[0]{message}{content}, 'Hello from backup',
   'disabled account no longer chosen after the TTL');
admin('account', 'enable', 'primary');
sleep 2.5;
is(json_of(chat(KEY_DEFAULT, $body))->{choices}[0]{message}{content}, 'Hello from primary',
   're-enabled account chosen again');

# an unknown key is cached as unknown, but only for the TTL: a key that
# is created after a client tried it starts working within the TTL
my $later = 'tb-test-created-later-0011';
error_is(chat($later, $body), 401, 'invalid_api_key', 'a key that does not exist yet: 401');
my ($rc2) = admin('key', 'add', '--group', 'default', '--name', 'later', '--key', $later);
is($rc2, 0, 'tokenbay-admin creates it');
error_is(chat($later, $body), 401, 'invalid_api_key',
         'right after creation the cached "unknown" answer still holds (negative cache)');
sleep 2.5;
is(chat($later, $body)->code, 200, '... and expires with the TTL: the key works');

# a key created by tokenbay-admin and never tried before works at once
my ($rc3, $out) = admin('key', 'add', '--group', 'default', '--name', 'fresh');
my ($newkey) = $out =~ /\b(tb-[A-Za-z0-9]{40})\b/;
is(chat($newkey // 'none', $body)->code, 200, 'a new key works immediately');
