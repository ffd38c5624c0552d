/* tb_catalog (models, aliases, accounts, who serves what for which group)
 * and the /v1/models body built from it (tb_openai_models_body). */
#include <string.h>

#include <apr_strings.h>

#include "tb_catalog.h"
#include "tb_json.h"
#include "tb_openai.h"
#include "tb_unit.h"

/* Groups used below. */
#define G_MAIN  1
#define G_OTHER 2
#define G_EMPTY 3

static void add_account(tb_catalog_t *cat, int id, const char *name,
                        const char *base_url, int priority, int active)
{
    tb_account_t a;
    char name_buf[64], url_buf[128];

    /* from scratch buffers, wiped afterwards: the catalogue must copy */
    apr_cpystrn(name_buf, name, sizeof(name_buf));
    apr_cpystrn(url_buf, base_url, sizeof(url_buf));
    memset(&a, 0, sizeof(a));
    a.id = id;
    a.name = name_buf;
    a.protocol = "openai-chat";
    a.base_url = url_buf;
    a.credential = id == 3 ? NULL : "sk-secret";
    a.priority = priority;
    a.weight = 1;
    a.active = active;
    a.groups = NULL;
    tb_catalog_add_account(cat, &a);
    memset(name_buf, 'X', sizeof(name_buf) - 1);
    memset(url_buf, 'X', sizeof(url_buf) - 1);
}

/*   model        served by (account: groups, status)
 *   gpt-4o       1 main; 2 main+other; 4 main inactive
 *   gpt-4o-mini  1 main; 5 other
 *   claude-3     3 main
 *   llama-3      4 main inactive                (reachable by nobody)
 *   o1           2 main+other; 5 other
 *   orphan       -                              (reachable by nobody)
 *   aliases: 4o -> gpt-4o, mini -> gpt-4o-mini, llama -> llama-3,
 *            ghost -> (unknown model, ignored) */
static tb_catalog_t *build(apr_pool_t *p)
{
    tb_catalog_t *cat = NULL;
    char id_buf[32];

    OK(tb_catalog_create(&cat, p) == APR_SUCCESS && cat,
       "catalog: created");
    OK(tb_catalog_pool(cat) == p, "catalog: lives in the pool it was given");

    apr_cpystrn(id_buf, "gpt-4o", sizeof(id_buf));
    tb_catalog_add_model(cat, id_buf, "openai", 1715367049);
    memset(id_buf, 'X', sizeof(id_buf) - 1);
    tb_catalog_add_model(cat, "gpt-4o-mini", NULL, 1721172741);
    tb_catalog_add_model(cat, "claude-3", "anthropic", 1700000000);
    tb_catalog_add_model(cat, "llama-3", "meta", 1713000000);
    tb_catalog_add_model(cat, "o1", "openai", 1734375816);
    tb_catalog_add_model(cat, "orphan", "nobody", 0);

    apr_cpystrn(id_buf, "4o", sizeof(id_buf));
    tb_catalog_add_alias(cat, id_buf, "gpt-4o");
    memset(id_buf, 'X', sizeof(id_buf) - 1);
    tb_catalog_add_alias(cat, "mini", "gpt-4o-mini");
    tb_catalog_add_alias(cat, "llama", "llama-3");
    tb_catalog_add_alias(cat, "ghost", "no-such-model");

    add_account(cat, 1, "openai-main", "https://api.openai.com/v1///", 10, 1);
    add_account(cat, 2, "openai-backup", "https://backup.example/v1", 5, 1);
    add_account(cat, 3, "anthropic", "https://api.anthropic.com/", 0, 1);
    add_account(cat, 4, "disabled", "http://disabled.example/", 0, 0);
    add_account(cat, 5, "other-only", "http://other.example", 0, 1);

    tb_catalog_add_account_group(cat, 1, G_MAIN);
    tb_catalog_add_account_group(cat, 2, G_MAIN);
    tb_catalog_add_account_group(cat, 2, G_OTHER);
    tb_catalog_add_account_group(cat, 3, G_MAIN);
    tb_catalog_add_account_group(cat, 4, G_MAIN);
    tb_catalog_add_account_group(cat, 5, G_OTHER);
    tb_catalog_add_account_group(cat, 99, G_MAIN);      /* unknown: ignored */

    tb_catalog_add_account_model(cat, 1, "gpt-4o", NULL);
    tb_catalog_add_account_model(cat, 1, "gpt-4o-mini", "");
    tb_catalog_add_account_model(cat, 2, "gpt-4o", "gpt-4o-2024-08-06");
    tb_catalog_add_account_model(cat, 2, "o1", "o1-2024-12-17");
    tb_catalog_add_account_model(cat, 3, "claude-3", "claude-3-5-sonnet");
    tb_catalog_add_account_model(cat, 4, "gpt-4o", NULL);
    tb_catalog_add_account_model(cat, 4, "llama-3", NULL);
    tb_catalog_add_account_model(cat, 5, "o1", NULL);
    tb_catalog_add_account_model(cat, 5, "gpt-4o-mini", "mini-upstream");
    tb_catalog_add_account_model(cat, 99, "gpt-4o", NULL);  /* unknown acct */
    tb_catalog_add_account_model(cat, 1, "no-such-model", NULL);
    return cat;
}

static void resolve(const tb_catalog_t *cat)
{
    const tb_model_t *m = tb_catalog_resolve(cat, "gpt-4o");

    OK(m && !strcmp(m->id, "gpt-4o") && !strcmp(m->owned_by, "openai")
       && m->created == 1715367049,
       "resolve by id: gpt-4o with its owner and creation time "
       "(the id was copied)");
    OK(tb_catalog_resolve(cat, "4o") == m,
       "resolve by alias: 4o is the gpt-4o model itself (alias copied)");
    m = tb_catalog_resolve(cat, "mini");
    OK(m && !strcmp(m->id, "gpt-4o-mini"), "resolve by alias: mini");
    OK(m && !strcmp(m->owned_by, "tokenbay"),
       "add_model: a NULL owner becomes \"tokenbay\"");
    OK(tb_catalog_resolve(cat, "ghost") == NULL,
       "resolve: an alias to an unknown model was ignored");
    OK(tb_catalog_resolve(cat, "no-such-model") == NULL,
       "resolve: an unknown name gives NULL");
    OK(tb_catalog_resolve(cat, "GPT-4o") == NULL && tb_catalog_resolve(cat, "")
       == NULL && tb_catalog_resolve(cat, "gpt-4") == NULL,
       "resolve: exact, case-sensitive, no prefix matching");
}

/* The route of account `id` in `routes`, or NULL. */
static const tb_route_t *route_of(const apr_array_header_t *routes, int id)
{
    int i;

    for (i = 0; routes && i < routes->nelts; ++i) {
        const tb_route_t *r = &APR_ARRAY_IDX(routes, i, tb_route_t);
        if (r->account && r->account->id == id) {
            return r;
        }
    }
    return NULL;
}

static void routes(const tb_catalog_t *cat, apr_pool_t *p)
{
    apr_array_header_t *act = NULL;
    const tb_route_t *r;
    int conf = -1;

    tb_catalog_routes(cat, G_MAIN, "gpt-4o", p, &act, &conf);
    OK(act && act->nelts == 2 && route_of(act, 1) && route_of(act, 2),
       "routes main/gpt-4o: the two active accounts of the group (%d)",
       act ? act->nelts : -1);
    OK(conf == 3, "routes main/gpt-4o: the inactive one counts as configured "
       "(%d)", conf);
    OK(!route_of(act, 4), "routes main/gpt-4o: the inactive one is not returned");
    r = route_of(act, 1);
    OK(r && !strcmp(r->upstream_model, "gpt-4o"),
       "routes: a NULL upstream name means the model id");
    OK(r && !strcmp(r->account->base_url, "https://api.openai.com/v1"),
       "account: all trailing slashes stripped from base_url (%s)",
       r ? r->account->base_url : "-");
    OK(r && !strcmp(r->account->name, "openai-main")
       && !strcmp(r->account->protocol, "openai-chat")
       && !strcmp(r->account->credential, "sk-secret")
       && r->account->priority == 10 && r->account->weight == 1
       && r->account->active,
       "account: fields kept, strings copied from the caller's buffers");
    r = route_of(act, 2);
    OK(r && !strcmp(r->upstream_model, "gpt-4o-2024-08-06"),
       "routes: the account's own upstream name is used");
    OK(r && !strcmp(r->account->base_url, "https://backup.example/v1"),
       "account: a base_url without trailing slash is unchanged");

    tb_catalog_routes(cat, G_MAIN, "gpt-4o-mini", p, &act, &conf);
    r = route_of(act, 1);
    OK(act->nelts == 1 && conf == 1 && r
       && !strcmp(r->upstream_model, "gpt-4o-mini"),
       "routes main/gpt-4o-mini: an empty upstream name means the model id");

    tb_catalog_routes(cat, G_MAIN, "claude-3", p, &act, &conf);
    r = route_of(act, 3);
    OK(act->nelts == 1 && conf == 1 && r
       && !strcmp(r->account->base_url, "https://api.anthropic.com")
       && r->account->credential && !*r->account->credential,
       "routes main/claude-3: one route; slash stripped; NULL credential "
       "stored as \"\"");

    tb_catalog_routes(cat, G_OTHER, "gpt-4o", p, &act, &conf);
    OK(act->nelts == 1 && conf == 1 && route_of(act, 2),
       "routes other/gpt-4o: only the account that is in that group");

    tb_catalog_routes(cat, G_MAIN, "o1", p, &act, &conf);
    OK(act->nelts == 1 && conf == 1 && route_of(act, 2) && !route_of(act, 5),
       "routes main/o1: an account of another group is left out");
    tb_catalog_routes(cat, G_OTHER, "o1", p, &act, &conf);
    OK(act->nelts == 2 && conf == 2 && route_of(act, 2) && route_of(act, 5),
       "routes other/o1: both accounts of that group");

    tb_catalog_routes(cat, G_MAIN, "llama-3", p, &act, &conf);
    OK(act && act->nelts == 0 && conf == 1,
       "routes main/llama-3: none active, one configured");

    tb_catalog_routes(cat, G_EMPTY, "gpt-4o", p, &act, &conf);
    OK(act && act->nelts == 0 && conf == 0,
       "routes for a group without accounts: none, none configured");
    tb_catalog_routes(cat, G_MAIN, "orphan", p, &act, &conf);
    OK(act && act->nelts == 0 && conf == 0,
       "routes for a model nobody serves: none, none configured");
    conf = -1;
    act = NULL;
    tb_catalog_routes(cat, G_MAIN, "no-such-model", p, &act, &conf);
    OK(act && act->nelts == 0 && conf == 0,
       "routes for an unknown model: an empty array, 0 configured");
}

/* The ids of a models_for_group result joined by spaces. */
static const char *ids(apr_pool_t *p, const apr_array_header_t *arr)
{
    const char *s = "";
    int i;

    for (i = 0; arr && i < arr->nelts; ++i) {
        s = apr_pstrcat(p, s, i ? " " : "",
                        APR_ARRAY_IDX(arr, i, tb_model_entry_t).id, NULL);
    }
    return s;
}

static void models_for_group(const tb_catalog_t *cat, apr_pool_t *p)
{
    apr_array_header_t *arr;
    const char *got;
    int i, links_ok = 1;

    arr = tb_catalog_models_for_group(cat, G_MAIN, p);
    got = ids(p, arr);
    OK(!strcmp(got, "4o claude-3 gpt-4o gpt-4o-mini mini o1"),
       "models main: sorted ids and aliases; not llama(-3) (inactive only) "
       "nor orphan (got: %s)", got);
    for (i = 0; arr && i < arr->nelts; ++i) {
        const tb_model_entry_t *e = &APR_ARRAY_IDX(arr, i, tb_model_entry_t);
        links_ok &= e->model == tb_catalog_resolve(cat, e->id);
    }
    OK(links_ok, "models main: each entry points at the model its id resolves to");

    got = ids(p, tb_catalog_models_for_group(cat, G_OTHER, p));
    OK(!strcmp(got, "4o gpt-4o gpt-4o-mini mini o1"),
       "models other: only what that group's accounts serve (got: %s)", got);

    arr = tb_catalog_models_for_group(cat, G_EMPTY, p);
    OK(arr && arr->nelts == 0, "models for a group without accounts: empty");
}

static int str_is(const json_t *obj, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(obj, key));

    return v && !strcmp(v, want);
}

static json_t *models_json(apr_pool_t *p, const apr_array_header_t *arr)
{
    const char *body = tb_openai_models_body(p, arr);
    json_t *root = NULL;
    const char *err = NULL;

    OK(body && tb_json_parse(&root, p, body, strlen(body), &err)
       == APR_SUCCESS, "models body parses: %s", body ? body : "NULL");
    OK(json_is_object(root) && json_object_size(root) == 2
       && str_is(root, "object", "list")
       && json_is_array(json_object_get(root, "data")),
       "models body: {\"object\":\"list\",\"data\":[...]}");
    return root;
}

static void models_body(const tb_catalog_t *cat, apr_pool_t *p)
{
    apr_array_header_t *arr = tb_catalog_models_for_group(cat, G_MAIN, p);
    json_t *root = models_json(p, arr);
    json_t *data = json_object_get(root, "data");
    int i, shape_ok = 1, n = arr->nelts;
    json_t *d;

    OK((int)json_array_size(data) == n, "models body: one element per entry "
       "(%d)", n);
    for (i = 0; data && i < (int)json_array_size(data) && i < n; ++i) {
        const tb_model_entry_t *e = &APR_ARRAY_IDX(arr, i, tb_model_entry_t);
        json_t *o = json_array_get(data, i);

        shape_ok &= json_is_object(o) && json_object_size(o) == 4
            && str_is(o, "id", e->id) && str_is(o, "object", "model")
            && json_is_integer(json_object_get(o, "created"))
            && json_integer_value(json_object_get(o, "created"))
               == e->model->created
            && str_is(o, "owned_by", e->model->owned_by);
    }
    OK(shape_ok, "models body: each element is {id, object:\"model\", "
       "created, owned_by} in entry order");
    d = json_array_get(data, 0);
    OK(str_is(d, "id", "4o") && str_is(d, "owned_by", "openai")
       && json_integer_value(json_object_get(d, "created")) == 1715367049,
       "models body: an alias is listed with its model's owner and date");

    arr = tb_catalog_models_for_group(cat, G_EMPTY, p);
    root = models_json(p, arr);
    OK(json_array_size(json_object_get(root, "data")) == 0,
       "models body: no entries gives an empty data array");
}

void test_catalog(apr_pool_t *p)
{
    apr_pool_t *catp, *reqp;
    tb_catalog_t *cat;

    apr_pool_create(&catp, p);
    apr_pool_create(&reqp, p);
    cat = build(catp);
    resolve(cat);
    routes(cat, reqp);
    models_for_group(cat, reqp);
    models_body(cat, reqp);
    apr_pool_destroy(reqp);
    apr_pool_destroy(catp);
}
