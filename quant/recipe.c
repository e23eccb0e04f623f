/* recipe.c -- recipe strings ("flexllm", "fp", "w4a4kv4-spinquant", ...)
 * to quantizer specs; the meaning of each is documented in flx_qmodel.h and
 * docs/quant.md. */
#include "flx_qmodel.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* group_size placeholder for "one group per head": resolved to head_dim
 * when the model config is known (flx_recipe_check, fake quantization). */
#define PER_HEAD 0

static int bits_ok(long b) { return (b >= 2 && b <= 8) || b == 16; }

static void set_float(flx_recipe *r)
{
    r->w_bits = r->a_bits = r->kv_bits = 16;
    r->w = flx_qspec_make(16, FLX_QS_SYM, FLX_QG_ROW, 0);
    r->a = r->a_o = flx_qspec_make(16, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0);
    r->k = r->v = flx_qspec_make(16, FLX_QS_ASYM_FLOAT, FLX_QG_GROUP, PER_HEAD);
}

static int parse_research(flx_recipe *r, const char *text, flx_error *err)
{
    const char *p = text;
    long w = -1, a = -1, kv = -1, g = -1;
    int spin = 0;
    if (*p != 'w')
        return flx_fail(err, FLX_EINVAL,
                        "unknown recipe '%s': expected fp, flexllm or w<bits>a<bits>[kv<bits>][g<group>][-spinquant]",
                        text);
    while (*p && *p != '-') {
        const char *key = p;
        long *slot;
        if (p[0] == 'k' && p[1] == 'v') { slot = &kv; p += 2; }
        else if (*p == 'w') { slot = &w; p++; }
        else if (*p == 'a') { slot = &a; p++; }
        else if (*p == 'g') { slot = &g; p++; }
        else
            return flx_fail(err, FLX_EINVAL, "recipe '%s': unexpected '%s' (known parts: w, a, kv, g)",
                            text, key);
        if (!isdigit((unsigned char)*p))
            return flx_fail(err, FLX_EINVAL, "recipe '%s': '%.*s' needs a number", text,
                            (int)(p - key), key);
        long v = 0;
        int n_digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (++n_digits > 6)
                return flx_fail(err, FLX_EINVAL, "recipe '%s': number after '%.*s' is too long", text,
                                (int)(p - key - n_digits + 1), key);
            v = v * 10 + (*p++ - '0');
        }
        if (*slot >= 0)
            return flx_fail(err, FLX_EINVAL, "recipe '%s': '%.*s' given twice", text,
                            key[0] == 'k' ? 2 : 1, key);
        *slot = v;
    }
    if (*p == '-') {
        if (strcmp(p + 1, "spinquant") == 0) spin = 1;
        else
            return flx_fail(err, FLX_EINVAL, "recipe '%s': unknown suffix '%s' (known: -spinquant)",
                            text, p);
    }
    if (w < 0 || a < 0)
        return flx_fail(err, FLX_EINVAL, "recipe '%s': needs both w<bits> and a<bits>", text);
    if (!bits_ok(w))
        return flx_fail(err, FLX_EINVAL, "recipe '%s': weight bits %ld impossible (use 2..8 or 16)",
                        text, w);
    if (!bits_ok(a))
        return flx_fail(err, FLX_EINVAL,
                        "recipe '%s': activation bits %ld impossible (use 2..8 or 16)", text, a);
    if (kv < 0) kv = 16;
    if (!bits_ok(kv))
        return flx_fail(err, FLX_EINVAL, "recipe '%s': KV bits %ld impossible (use 2..8 or 16)",
                        text, kv);
    if (g == 0)
        return flx_fail(err, FLX_EINVAL, "recipe '%s': group size must be positive", text);
    if (g > 0 && w == 16)
        return flx_fail(err, FLX_EINVAL, "recipe '%s': a group size needs quantized weights", text);

    r->kind = spin ? FLX_RECIPE_SPINQUANT : FLX_RECIPE_RESEARCH;
    r->w_bits = (int32_t)w;
    r->a_bits = (int32_t)a;
    r->kv_bits = (int32_t)kv;
    flx_qgran wg = g > 0 ? FLX_QG_GROUP : FLX_QG_ROW;
    int32_t gs = g > 0 ? (int32_t)g : 0;
    if (spin) {
        r->w = flx_qspec_make(r->w_bits, FLX_QS_SYM, wg, gs);
        r->w.round = FLX_QR_HALF_EVEN;
        r->w.mse_clip = 1;
        r->a = flx_qspec_make(r->a_bits, FLX_QS_ASYM_ZP, FLX_QG_ROW, 0);
        r->a_o = flx_qspec_make(r->a_bits, FLX_QS_ASYM_ZP, FLX_QG_GROUP, PER_HEAD);
        r->k = flx_qspec_make(r->kv_bits, FLX_QS_ASYM_ZP, FLX_QG_GROUP, PER_HEAD);
        r->a.round = r->a_o.round = r->k.round = FLX_QR_HALF_EVEN;
    } else {
        r->w = flx_qspec_make(r->w_bits, FLX_QS_SYM, wg, gs);
        r->a = r->a_o = flx_qspec_make(r->a_bits, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0);
        r->k = flx_qspec_make(r->kv_bits, FLX_QS_ASYM_FLOAT, FLX_QG_GROUP, PER_HEAD);
    }
    r->v = r->k;
    /* SpinQuant quantizes V (v_proj's output quantizer) and the o_proj input
     * with its group-wise per-token quantizer, whose range is the group's
     * [min, max] without 0; K goes through the per-row path, which widens
     * the range to include 0 */
    if (spin) r->v.minmax_range = r->a_o.minmax_range = 1;
    r->quant_head = 0;
    r->static_attn = 0;
    r->r3_online = r->kv_bits < 16;
    /* SpinQuant adds R3 (its QK rotation wrapper, which also quantizes K)
     * whenever K is quantized, rotated model or not; FlexLLM-style research
     * recipes run it only with --rotate */
    r->r3_always = spin && r->kv_bits < 16;
    r->r4_online = 1;

    int n = snprintf(r->name, sizeof r->name, "w%da%d", (int)w, (int)a);
    if (kv < 16) n += snprintf(r->name + n, sizeof r->name - (size_t)n, "kv%d", (int)kv);
    if (g > 0) n += snprintf(r->name + n, sizeof r->name - (size_t)n, "g%ld", g);
    if (spin) snprintf(r->name + n, sizeof r->name - (size_t)n, "-spinquant");
    return FLX_OK;
}

int flx_recipe_parse(flx_recipe *r, const char *text, flx_error *err)
{
    memset(r, 0, sizeof *r);
    if (!text || !*text) return flx_fail(err, FLX_EINVAL, "empty recipe name");
    if (strlen(text) >= sizeof r->name)
        return flx_fail(err, FLX_EINVAL, "recipe name '%.40s...' is too long", text);
    set_float(r);
    if (strcmp(text, "fp") == 0) {
        r->kind = FLX_RECIPE_FP;
        r->r4_online = 1;     /* a merged R4 needs its online half */
        snprintf(r->name, sizeof r->name, "fp");
        return FLX_OK;
    }
    if (strcmp(text, "flexllm") == 0) {
        r->kind = FLX_RECIPE_FLEXLLM;
        r->w_bits = 4;
        r->w = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
        r->w_wsum = 1;
        r->a_bits = 4;
        r->a = r->a_o = flx_qspec_make(4, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0);
        r->quant_head = 1;
        r->kv_bits = 8;
        r->k = r->v = flx_qspec_make(8, FLX_QS_SYM, FLX_QG_TENSOR, 0);
        r->static_attn = 1;
        r->r3_online = 0;     /* FlexLLM has no online Hadamard on Q/K */
        r->r4_online = 1;
        snprintf(r->name, sizeof r->name, "flexllm");
        return FLX_OK;
    }
    int rc = parse_research(r, text, err);
    if (rc != FLX_OK) memset(r, 0, sizeof *r);
    return rc;
}

int flx_recipe_check(const flx_recipe *r, const flx_llama_config *cfg, flx_error *err)
{
    char what[96];
    int rc;
    if (r->w_bits < 16) {
        int64_t ins[3] = {cfg->d_model, (int64_t)cfg->n_heads * cfg->head_dim, cfg->d_ff};
        const char *names[3] = {"q/k/v/gate/up (d_model)", "o_proj (n_heads*head_dim)",
                                "down_proj (d_ff)"};
        for (int i = 0; i < 3; i++) {
            snprintf(what, sizeof what, "recipe %s, weights of %s", r->name, names[i]);
            if ((rc = flx_qspec_check(&r->w, ins[i], what, err)) != FLX_OK) return rc;
        }
    }
    if (r->a_bits < 16) {
        flx_qspec ao = r->a_o;
        if (ao.gran == FLX_QG_GROUP && ao.group_size == PER_HEAD) ao.group_size = cfg->head_dim;
        snprintf(what, sizeof what, "recipe %s, activations", r->name);
        if ((rc = flx_qspec_check(&r->a, cfg->d_model, what, err)) != FLX_OK) return rc;
        if ((rc = flx_qspec_check(&ao, (int64_t)cfg->n_heads * cfg->head_dim, what, err)) != FLX_OK)
            return rc;
    }
    if (r->kv_bits < 16 && !r->static_attn) {
        flx_qspec k = r->k;
        if (k.gran == FLX_QG_GROUP && k.group_size == PER_HEAD) k.group_size = cfg->head_dim;
        snprintf(what, sizeof what, "recipe %s, K/V cache", r->name);
        if ((rc = flx_qspec_check(&k, (int64_t)cfg->n_kv_heads * cfg->head_dim, what, err)) != FLX_OK)
            return rc;
    }
    return FLX_OK;
}

static const char *scheme_name(flx_qscheme s)
{
    return s == FLX_QS_SYM ? "sym" : s == FLX_QS_ASYM_ZP ? "asym_zero_point" : "asym_float_offset";
}

static int spec_json(const flx_qspec *s, int32_t bits, const char *gran_row, char *buf, size_t cap)
{
    if (bits >= 16) return snprintf(buf, cap, "\"float\"");
    char gran[48];
    if (s->gran == FLX_QG_TENSOR) snprintf(gran, sizeof gran, "tensor");
    else if (s->gran == FLX_QG_ROW) snprintf(gran, sizeof gran, "%s", gran_row);
    else if (s->group_size == PER_HEAD) snprintf(gran, sizeof gran, "head");
    else snprintf(gran, sizeof gran, "group%d", (int)s->group_size);
    return snprintf(buf, cap,
                    "{\"bits\":%d,\"scheme\":\"%s\",\"granularity\":\"%s\",\"round\":\"%s\","
                    "\"clip\":%g,\"mse_clip\":%s%s}",
                    (int)bits, scheme_name(s->scheme), gran,
                    s->round == FLX_QR_HALF_EVEN ? "half_even" : "half_away", (double)s->clip,
                    s->mse_clip ? "true" : "false", s->minmax_range ? ",\"range\":\"min_max\"" : "");
}

int flx_recipe_json(const flx_recipe *r, char *buf, size_t cap)
{
    char w[256], a[256], ao[256], kv[600], k[256], v[256];
    spec_json(&r->w, r->w_bits, "channel", w, sizeof w);
    spec_json(&r->a, r->a_bits, "token", a, sizeof a);
    spec_json(&r->a_o, r->a_bits, "token", ao, sizeof ao);
    if (r->static_attn)
        snprintf(kv, sizeof kv,
                 "{\"q\":\"int8 sym static per layer, scale F*q_s with F = floor(sqrt(head_dim))\",\"k\":\"int8 sym static k_s\","
                 "\"v\":\"int8 sym static v_s\",\"p\":\"uint8 static a_s\"}");
    else if (r->k.minmax_range == r->v.minmax_range)
        spec_json(&r->k, r->kv_bits, "token", kv, sizeof kv);
    else {
        spec_json(&r->k, r->kv_bits, "token", k, sizeof k);
        spec_json(&r->v, r->kv_bits, "token", v, sizeof v);
        snprintf(kv, sizeof kv, "{\"k\":%s,\"v\":%s}", k, v);
    }
    return snprintf(buf, cap,
                    "{\"name\":\"%s\",\"weights\":%s,\"wsum\":%s,\"activations\":%s,"
                    "\"o_proj_input\":%s,\"kv\":%s,\"head\":\"%s\",\"embedding\":\"fp32\","
                    "\"r3_online_when_rotated\":%s,\"r4_online_when_rotated\":%s%s}",
                    r->name, w, r->w_wsum ? "true" : "false", a, ao, kv,
                    r->quant_head ? "quantized like the other linears" : "float",
                    r->r3_online ? "true" : "false", r->r4_online ? "true" : "false",
                    r->r3_always ? ",\"r3_online_without_rotation\":true" : "");
}
