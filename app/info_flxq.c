/* info_flxq.c -- `flxemu info --model FILE.flxq`: what the file is and how
 * it was made (docs/quant.md "The .flxq file"). */
#include "info_flxq.h"
#include "cli.h"
#include "flx_qmodel.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static cJSON *parsed_or_null(const char *s)
{
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    return j ? j : cJSON_CreateNull();
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static void print_provenance(const cJSON *p)
{
    if (!cJSON_IsObject(p)) {
        printf("provenance:  none recorded (a file from before flxemu stored it)\n");
        return;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(p, "source_model");
    printf("provenance:  flxemu %s, %s\n", jstr(p, "flxemu_version"), jstr(p, "command"));
    printf("  source:    %s\n             sha256 %s\n", jstr(src, "path"), jstr(src, "sha256"));
    const cJSON *rot = cJSON_GetObjectItemCaseSensitive(p, "rotation");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(rot, "seed");
    printf("  rotation:  %s, seed %.0f", jstr(rot, "kind"), cJSON_IsNumber(seed) ? seed->valuedouble : 0.0);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(rot, "file");
    if (cJSON_IsObject(rf)) printf(", file %s (sha256 %s)", jstr(rf, "path"), jstr(rf, "sha256"));
    printf("\n");
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(p, "d_ff_padding");
    if (cJSON_IsObject(pad))
        printf("  d_ff:      zero-padded %.0f -> %.0f\n", cJSON_GetObjectItemCaseSensitive(pad, "from")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(pad, "to")->valuedouble);
    printf("  weights:   %s", jstr(p, "weights"));
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(p, "gptq");
    if (cJSON_IsObject(g))
        printf(" (block %.0f, damping %g, act-order %s, %s; group scales %s; calibration activations %s)",
               cJSON_GetObjectItemCaseSensitive(g, "block_size")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(g, "damp")->valuedouble,
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "act_order")) ? "on" : "off", jstr(g, "order"),
               jstr(g, "group_scales"), jstr(g, "calibration_activations"));
    printf("\n");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(p, "calibration");
    if (cJSON_IsObject(c)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
        printf("  calibration: %.0f windows x %.0f tokens (seed %.0f) from %s\n             text sha256 %s\n"
               "             tokens sha256 %s\n",
               cJSON_GetObjectItemCaseSensitive(c, "windows")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(c, "seqlen")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(c, "seed")->valuedouble, jstr(t, "path"), jstr(t, "sha256"),
               jstr(c, "tokens_sha256"));
    } else {
        printf("  calibration: none\n");
    }
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(p, "tokenizer_from");
    if (cJSON_IsObject(tf)) printf("  tokenizer from: %s (sha256 %s)\n", jstr(tf, "path"), jstr(tf, "sha256"));
}

int flx_info_flxq(const char *path, const char *json_path)
{
    flx_error err = {0};
    flx_qmeta meta;
    if (flx_qmeta_read(&meta, path, &err)) return cli_fail("info", &err);
    flx_qmodel qm;
    /* every check of a load, but no int8 copy of 4-bit codes it never reads */
    const flx_qload_opts lo = { NULL, 1 };
    if (flx_qmodel_load_ex(&qm, path, &lo, &err)) {
        flx_qmeta_free(&meta);
        return cli_fail("info", &err);
    }
    const flx_llama_config *c = &qm.cfg;
    struct stat st;
    long long file_bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    cJSON *prov = parsed_or_null(meta.provenance);
    cJSON *rot = parsed_or_null(meta.rotation);
    char summary[1024];
    flx_qmeta_summary(&meta, summary, sizeof summary);

    printf("model:       %s\n", path);
    printf("format:      flxq (quantized; docs/quant.md), %lld bytes, %zu tensors\n", file_bytes, meta.n_tensors);
    printf("summary:     %s\n", summary);
    printf("recipe:      %s\n             %s\n", qm.recipe, meta.recipe_json ? meta.recipe_json : "?");
    if (meta.mixed_bits) printf("mixed bits:  %s (weights; the rest as the recipe)\n", meta.mixed_bits);
    if (meta.mixed_act_bits)
        printf("mixed act:   %s (activation bits per linear input; 16 = float)\n", meta.mixed_act_bits);
    printf("rotation:    %s, seed %llu, R3 %s, R4 %s%s\n", qm.rotation, (unsigned long long)qm.rotation_seed,
           qm.r3_online ? "online" : "off", qm.r4_online ? "online" : "off",
           qm.r4_online ? (qm.r4_dense ? " (dense matrix)" : " (FHT)") : "");
    printf("config:      vocab %d, hidden %d, layers %d, heads %d (kv %d, head_dim %d), ffn %d", c->n_vocab,
           c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff);
    if (qm.d_ff_source) printf(" (zero-padded from %d)", qm.d_ff_source);
    printf(",\n             rope theta %g, %s pairs, static attention scales %s\n", c->rope_theta,
           c->rope_pairing == FLX_ROPE_ADJACENT ? "adjacent" : "split-half", qm.has_attn_scales ? "yes" : "no");
    if (qm.tok_blob)
        printf("tokenizer:   embedded (%s, %zu bytes, sha256 %s): %s, %d tokens\n", qm.tok_format,
               qm.tok_blob_bytes, qm.tok_sha256,
               flx_tokenizer_get_kind(qm.tok) == FLX_TOK_BPE ? "byte-level BPE" : "SentencePiece (llama)",
               flx_tokenizer_n_vocab(qm.tok));
    else if (qm.tok)
        printf("tokenizer:   not embedded; found with the source model %s\n", qm.source);
    else
        printf("tokenizer:   none (not embedded, none found with the source model %s): pass --tokenizer\n",
               qm.source[0] ? qm.source : "?");
    print_provenance(prov);

    int rc = FLX_EXIT_OK;
    if (json_path) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddStringToObject(root, "format", "flxq");
        cJSON_AddNumberToObject(root, "file_bytes", (double)file_bytes);
        cJSON_AddStringToObject(root, "summary", summary);
        cJSON_AddStringToObject(root, "recipe_name", qm.recipe);
        cJSON_AddItemToObject(root, "recipe", parsed_or_null(meta.recipe_json));
        cJSON_AddItemToObject(root, "rotation", rot);
        rot = NULL;
        cJSON_AddItemToObject(root, "config", parsed_or_null(meta.config));
        cJSON_AddItemToObject(root, "padding", parsed_or_null(meta.padding));
        cJSON_AddItemToObject(root, "tokenizer", parsed_or_null(meta.tokenizer));
        cJSON_AddItemToObject(root, "mixed_bits", parsed_or_null(meta.mixed_bits));
        cJSON_AddItemToObject(root, "mixed_act_bits", parsed_or_null(meta.mixed_act_bits));
        cJSON_AddItemToObject(root, "provenance", prov);
        prov = NULL;
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        flx_outfile o;
        if (!text) rc = cli_fail("info", &err);
        else if (flx_outfile_open(&o, json_path, &err)) rc = cli_fail("info", &err);
        else {
            fputs(text, o.fp);
            fputc('\n', o.fp);
            if (flx_outfile_commit(&o, &err)) rc = cli_fail("info", &err);
        }
        cJSON_free(text);
    }
    cJSON_Delete(prov);
    cJSON_Delete(rot);
    flx_qmodel_free(&qm);
    flx_qmeta_free(&meta);
    return rc;
}
