/* Hugging Face config.json -> flx_llama_config (LlamaConfig fields and the
 * defaults transformers uses when a field is absent). */
#include "flx_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u << 20)

typedef struct cfg_reader {
    const cJSON *root;
    const char  *source;
    flx_error   *err;
} cfg_reader;

/* An integer field; absent or null -> def (or an error when required). */
static int get_i64(cfg_reader *r, const cJSON *obj, const char *prefix, const char *key,
                   int required, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return flx_fail(r->err, FLX_EFORMAT, "%s: required field %s%s is missing", r->source,
                            prefix, key);
        *out = def;
        return FLX_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || floor(d) != d || d < (double)lo || d > (double)hi)
        return flx_fail(r->err, FLX_EFORMAT, "%s: field %s%s must be an integer in [%lld, %lld]",
                        r->source, prefix, key, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return FLX_OK;
}

static int get_i32(cfg_reader *r, const char *key, int required, int64_t def, int32_t *out)
{
    int64_t v = 0;
    int rc = get_i64(r, r->root, "", key, required, def, INT32_MIN, INT32_MAX, &v);
    if (!rc) *out = (int32_t)v;
    return rc;
}

static int get_f64(cfg_reader *r, const cJSON *obj, const char *prefix, const char *key,
                   int required, double def, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return flx_fail(r->err, FLX_EFORMAT, "%s: required field %s%s is missing", r->source,
                            prefix, key);
        *out = def;
        return FLX_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return flx_fail(r->err, FLX_EFORMAT, "%s: field %s%s must be a finite number", r->source,
                        prefix, key);
    *out = v->valuedouble;
    return FLX_OK;
}

static int get_bool(cfg_reader *r, const char *key, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return FLX_OK;
    }
    if (!cJSON_IsBool(v))
        return flx_fail(r->err, FLX_EFORMAT, "%s: field %s must be true or false", r->source, key);
    *out = cJSON_IsTrue(v);
    return FLX_OK;
}

/* A token id field: an integer, null (-1) or a list whose first entry is taken. */
static int get_token_id(cfg_reader *r, const char *key, int32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return FLX_OK;
    if (cJSON_IsArray(v)) {
        v = cJSON_GetArrayItem(v, 0);
        if (!v) return FLX_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || floor(d) != d || d < 0 || d > INT32_MAX)
        return flx_fail(r->err, FLX_EFORMAT, "%s: field %s must be a non-negative integer, a list "
                        "of them, or null", r->source, key);
    *out = (int32_t)d;
    return FLX_OK;
}

static int parse_rope_scaling(cfg_reader *r, flx_llama_config *c)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return FLX_OK;
    if (!cJSON_IsObject(rs))
        return flx_fail(r->err, FLX_EFORMAT, "%s: field rope_scaling must be an object or null",
                        r->source);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");   /* older configs */
    if (!cJSON_IsString(type))
        return flx_fail(r->err, FLX_EFORMAT, "%s: field rope_scaling.rope_type is missing or not a "
                        "string", r->source);
    if (!strcmp(type->valuestring, "default")) return FLX_OK;
    if (strcmp(type->valuestring, "llama3") != 0)
        return flx_fail(r->err, FLX_EUNSUPPORTED, "%s: field rope_scaling.rope_type \"%s\" is not "
                        "supported (only \"llama3\" and \"default\")", r->source,
                        type->valuestring);
    int64_t orig = 0;
    int rc;
    c->rope_llama3 = 1;
    if ((rc = get_f64(r, rs, "rope_scaling.", "factor", 1, 0, &c->rope_factor))) return rc;
    if ((rc = get_f64(r, rs, "rope_scaling.", "low_freq_factor", 1, 0, &c->rope_low_freq_factor)))
        return rc;
    if ((rc = get_f64(r, rs, "rope_scaling.", "high_freq_factor", 1, 0, &c->rope_high_freq_factor)))
        return rc;
    if ((rc = get_i64(r, rs, "rope_scaling.", "original_max_position_embeddings", 1, 0, 1,
                      INT32_MAX, &orig)))
        return rc;
    c->rope_orig_max_pos = (int32_t)orig;
    return FLX_OK;
}

/* Fields whose non-default value this model cannot represent. */
static int check_unsupported(cfg_reader *r)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, "model_type");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "llama") != 0))
        return flx_fail(r->err, FLX_EUNSUPPORTED, "%s: field model_type is \"%s\"; only \"llama\" "
                        "is supported", r->source, cJSON_IsString(v) ? v->valuestring : "?");
    v = cJSON_GetObjectItemCaseSensitive(r->root, "hidden_act");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "silu") != 0))
        return flx_fail(r->err, FLX_EUNSUPPORTED, "%s: field hidden_act must be \"silu\"", r->source);
    const char *bias[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        int b = 0;
        int rc = get_bool(r, bias[i], 0, &b);
        if (rc) return rc;
        if (b)
            return flx_fail(r->err, FLX_EUNSUPPORTED, "%s: field %s = true is not supported "
                            "(Llama has no biases)", r->source, bias[i]);
    }
    return FLX_OK;
}

int flx_hf_config_parse(const char *json, size_t bytes, const char *source, flx_llama_config *c,
                        flx_error *err)
{
    memset(c, 0, sizeof *c);
    int brc = flx_json_budget(json, bytes, 65536, source, err);
    if (brc) return brc;
    cJSON *root = cJSON_ParseWithLength(json, bytes);
    if (!root) return flx_fail(err, FLX_EFORMAT, "%s: not valid JSON", source);
    cfg_reader r = {root, source, err};
    int rc = FLX_OK;
    if (!cJSON_IsObject(root)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: not a JSON object", source);
        goto done;
    }
    if ((rc = check_unsupported(&r))) goto done;
    if ((rc = get_i32(&r, "vocab_size", 1, 0, &c->n_vocab))) goto done;
    if ((rc = get_i32(&r, "hidden_size", 1, 0, &c->d_model))) goto done;
    if ((rc = get_i32(&r, "num_hidden_layers", 1, 0, &c->n_layers))) goto done;
    if ((rc = get_i32(&r, "num_attention_heads", 1, 0, &c->n_heads))) goto done;
    if ((rc = get_i32(&r, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads))) goto done;
    if ((rc = get_i32(&r, "intermediate_size", 1, 0, &c->d_ff))) goto done;
    if (c->n_heads <= 0) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: field num_attention_heads = %d must be positive",
                      source, c->n_heads);
        goto done;
    }
    if ((rc = get_i32(&r, "head_dim", 0, c->d_model / c->n_heads, &c->head_dim))) goto done;
    if ((rc = get_i32(&r, "max_position_embeddings", 0, 2048, &c->max_seq_len))) goto done;
    double eps;
    if ((rc = get_f64(&r, root, "", "rms_norm_eps", 0, 1e-6, &eps))) goto done;
    c->rms_eps = (float)eps;
    if ((rc = get_f64(&r, root, "", "rope_theta", 0, 10000.0, &c->rope_theta))) goto done;
    if ((rc = parse_rope_scaling(&r, c))) goto done;
    if ((rc = get_bool(&r, "tie_word_embeddings", 0, &c->tie_embeddings))) goto done;
    if ((rc = get_token_id(&r, "bos_token_id", &c->bos_id))) goto done;
    if ((rc = get_token_id(&r, "eos_token_id", &c->eos_id))) goto done;
    c->rope_pairing = FLX_ROPE_SPLIT_HALF;
    rc = flx_llama_config_validate(c, source, err);
done:
    cJSON_Delete(root);
    return rc;
}

int flx_hf_config_load(const char *path, flx_llama_config *cfg, flx_error *err)
{
    char *text;
    size_t bytes;
    int rc = flx_read_file(path, CONFIG_MAX_BYTES, &text, &bytes, err);
    if (rc) return rc;
    rc = flx_hf_config_parse(text, bytes, path, cfg, err);
    free(text);
    return rc;
}
