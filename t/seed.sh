#!/usr/bin/env bash
# Test fixtures, created through tokenbay-admin like an operator would.
# Every test file relies on these names; see t/lib/TB/Test.pm.
set -euo pipefail
cd "$(dirname "$0")/.."
A="perl scripts/tokenbay-admin"
M="http://127.0.0.1:${TB_MOCK_PORT:-18080}/a"

$A model add gpt-4o-mini --owned-by openai --created 1721172741 --aliases mini,gpt-mini
$A model add gpt-4o --owned-by openai --created 1715367049
$A model add flaky-model --owned-by tokenbay
$A model add doomed-model --owned-by tokenbay
$A model add dead-model --owned-by tokenbay
$A model add orphan-model --owned-by tokenbay
$A model add other-model --owned-by tokenbay
$A model add slow-model --owned-by tokenbay

$A group add default
$A group add restricted --models gpt-4o-mini
$A group add other
$A group add frozen
$A group disable frozen

# primary beats backup (priority); both serve gpt-4o-mini under other names
$A account add primary --base-url "$M/primary/v1" --credential sk-primary-secret-aaaa1111 \
    --priority 10 --groups default,restricted \
    --models gpt-4o-mini:gpt-4o-mini-2024-07-18,gpt-4o,slow-model
$A account add backup --base-url "$M/backup/v1/" --credential sk-backup-secret-bbbb2222 \
    --priority 5 --groups default,restricted --models gpt-4o-mini,gpt-4o,flaky-model
# nothing listens on port 1: connections are refused
$A account add refuser --base-url "http://127.0.0.1:1/v1" --credential sk-refuser-cccc3333 \
    --priority 10 --groups default --models flaky-model
$A account add doom-a --base-url "$M/doom-a/v1" --credential sk-doom-a-dddd4444 \
    --priority 10 --groups default --models doomed-model
$A account add doom-b --base-url "$M/doom-b/v1" --credential sk-doom-b-eeee5555 \
    --priority 5 --groups default --models doomed-model
$A account add sleeper --base-url "$M/sleeper/v1" --credential sk-sleeper-ffff6666 \
    --priority 10 --groups default --models dead-model
$A account disable sleeper
$A account add elsewhere --base-url "$M/elsewhere/v1" --credential sk-elsewhere-gggg7777 \
    --groups other --models other-model,gpt-4o-mini

$A key add --group default --name test-default --key tb-test-default-key-0001
$A key add --group default --name test-limited --models gpt-4o-mini --key tb-test-limited-key-0002
$A key add --group restricted --name test-restricted --key tb-test-restricted-0003
$A key add --group default --name test-disabled --key tb-test-disabled-key-04
$A key disable --key tb-test-disabled-key-04
$A key add --group default --name test-expired --expires '2020-01-01 00:00:00' --key tb-test-expired-key-005
$A key add --group default --name test-toggle --key tb-test-toggle-key-0006
$A key add --group default --name test-dbdown --key tb-test-dbdown-key-0007
$A key add --group other --name test-other --key tb-test-other-key-00008
$A key add --group frozen --name test-frozen --key tb-test-frozen-key-0009

# ---- dialects: the Responses route and protocol conversion (t/api/1x_*.t) ----
# group "dialects", key KEY_DIALECTS; every account below serves only it.
$A group add dialects
# resp-model: a Responses account first, a chat account as its failover
$A model add resp-model --owned-by tokenbay
# conv-model: only a chat account (Responses requests are converted)
$A model add conv-model --owned-by tokenbay
# native-model: only a Responses account (chat requests are converted)
$A model add native-model --owned-by tokenbay
# bare-model: a chat account that declares no capabilities (no stream usage)
$A model add bare-model --owned-by tokenbay
# nostore-model: a Responses account without the store/compact capabilities
$A model add nostore-model --owned-by tokenbay
# claude-model: only a protocol this version does not convert yet
$A model add claude-model --owned-by anthropic
$A account add rprimary --protocol openai-responses --base-url "$M/rprimary/v1" \
    --credential sk-rprimary-secret-hhhh8888 --priority 10 --groups dialects --models resp-model
$A account add rbackup --base-url "$M/rbackup/v1" --credential sk-rbackup-secret-iiii9999 \
    --priority 5 --groups dialects --models resp-model
$A account add cchat --base-url "$M/cchat/v1" --credential sk-cchat-secret-jjjj0000 \
    --groups dialects --models conv-model:conv-upstream
$A account add rnative --protocol openai-responses --base-url "$M/rnative/v1" \
    --credential sk-rnative-secret-kkkk1111 --groups dialects --models native-model:native-upstream
$A account add bare --capabilities '' --base-url "$M/bare/v1" --credential sk-bare-secret-llll2222 \
    --groups dialects --models bare-model
$A account add rnostore --protocol openai-responses --capabilities '' --base-url "$M/rnostore/v1" \
    --credential sk-rnostore-secret-mmmm3333 --groups dialects --models nostore-model
$A account add claude --protocol anthropic-messages --base-url "$M/claude/v1" \
    --credential sk-claude-secret-nnnn4444 --groups dialects --models claude-model
$A key add --group dialects --name test-dialects --key tb-test-dialects-key-010

# ---- scheduling (t/api/16_scheduling.t, on the tb_sched virtual host) ----
# group "sched", key tb-test-sched-key-000011; one model per behaviour, each
# with accounts of its own (cooldowns and error marks outlive a test case)
$A group add sched
for m in sched-weights sched-tier sched-limit sched-cool sched-all sched-auth \
         sched-sticky sched-resp sched-restart sched-late sched-quota sched-pm1 \
         sched-pm2 sched-conn; do
    $A model add $m --owned-by tokenbay
done
acct() { # NAME MODEL [account add options...]
    local n=$1 m=$2; shift 2
    $A account add "$n" --base-url "$M/$n/v1" --credential "sk-$n-secret-0000aaaa" \
        --groups sched --models "$m" "$@"
}
acct w1 sched-weights --weight 1
acct w3 sched-weights --weight 3
acct tier-hi sched-tier --priority 10
acct tier-lo sched-tier --priority 0
acct lim-a sched-limit --priority 10 --max-concurrency 2
acct lim-b sched-limit --priority 0 --max-concurrency 1
acct cool-a sched-cool --priority 10
acct cool-b sched-cool --priority 5
acct all-a sched-all
acct all-b sched-all
acct auth-a sched-auth --priority 10
acct auth-b sched-auth --priority 0
acct st-a sched-sticky
acct st-b sched-sticky
acct rs-a sched-resp --protocol openai-responses
acct rs-b sched-resp --protocol openai-responses
acct gr-a sched-restart --priority 10
acct gr-b sched-restart --priority 0
acct late-old sched-late
acct quota-a sched-quota --priority 10
acct quota-b sched-quota --priority 0
acct pm-a sched-pm1,sched-pm2 --priority 10
acct pm-b sched-pm1,sched-pm2 --priority 0
# nothing listens on port 1: connections are refused
$A account add conn-x --base-url "http://127.0.0.1:1/v1" --credential sk-conn-x-secret-0000aaaa \
    --priority 10 --groups sched --models sched-conn
acct conn-y sched-conn --priority 0
$A key add --group sched --name test-sched --key tb-test-sched-key-000011
$A key add --group sched --name test-sched2 --key tb-test-sched-key2-00012
