/* flxemu info -- describe a model: format, config, parameters, tensors,
 * weight bytes, tokenizer. */
#include "cli.h"
#include "flx_model.h"
#include "flx_qmodel.h"
#include "info_flxq.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD "info"

typedef struct info_args {
    const char *model, *json;
    long long threads;
} info_args;

#define A(f) offsetof(info_args, f)
static const cli_opt info_opts[] = {
    CLI_S("model", 'm', "PATH", A(model), "the model, as the positional PATH"),
    CLI_S("json", 0, "FILE", A(json), "also write the description as JSON to FILE"),
    CLI_I("threads", 't', "N", A(threads), 1, 1024, "threads for converting BF16/F16/quantized weights (default: cores)"),
    {0}};
#undef A

static const cli_spec info_spec = {
    .name = CMD,
    .usage = "PATH [--json FILE] [--threads N]",
    .about = "Loads a model (Hugging Face folder, config.json/model.safetensors path, or GGUF\n"
             "file) and prints its format, configuration, parameter count, tensor dtypes,\n"
             "fp32 weight bytes and tokenizer.  For a quantized .flxq: its recipe, rotation,\n"
             "configuration, tokenizer and provenance (source model, GPTQ, calibration).",
    .positional = "  PATH                    the model (or --model PATH)",
    .max_positional = 1,
    .examples = "flxemu info llama-3.2-1b/\n"
                "flxemu info model.gguf --json info.json\n"
                "flxemu info q.flxq                           # recipe and provenance",
};

static const char *tok_kind(const flx_tokenizer *t)
{
    return flx_tokenizer_get_kind(t) == FLX_TOK_BPE ? "byte-level BPE" : "SentencePiece (llama)";
}

static cJSON *describe_json(const flx_model *m, double seconds)
{
    const flx_llama_config *c = &m->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "path", m->path);
    cJSON_AddStringToObject(root, "format", m->format);
    cJSON *cfg = cJSON_AddObjectToObject(root, "config");
    cJSON_AddNumberToObject(cfg, "vocab_size", c->n_vocab);
    cJSON_AddNumberToObject(cfg, "hidden_size", c->d_model);
    cJSON_AddNumberToObject(cfg, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(cfg, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(cfg, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(cfg, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(cfg, "intermediate_size", c->d_ff);
    cJSON_AddNumberToObject(cfg, "max_position_embeddings", c->max_seq_len);
    cJSON_AddNumberToObject(cfg, "rms_norm_eps", c->rms_eps);
    cJSON_AddNumberToObject(cfg, "rope_theta", c->rope_theta);
    if (c->rope_llama3) {
        cJSON *rs = cJSON_AddObjectToObject(cfg, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_orig_max_pos);
    } else {
        cJSON_AddNullToObject(cfg, "rope_scaling");
    }
    cJSON_AddStringToObject(cfg, "rope_pairing",
                            c->rope_pairing == FLX_ROPE_ADJACENT ? "adjacent" : "split-half");
    cJSON_AddBoolToObject(cfg, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddNumberToObject(cfg, "bos_token_id", c->bos_id);
    cJSON_AddNumberToObject(cfg, "eos_token_id", c->eos_id);
    cJSON_AddNumberToObject(root, "n_params", (double)m->n_params);
    cJSON_AddNumberToObject(root, "n_tensors", m->n_tensors);
    cJSON_AddStringToObject(root, "dtypes", m->dtypes);
    cJSON_AddNumberToObject(root, "weight_bytes_f32", (double)m->weight_bytes_f32);
    cJSON_AddBoolToObject(root, "rope_freqs_tensor", m->rope_freqs_tensor);
    cJSON *inv = cJSON_AddArrayToObject(root, "rope_inv_freq");
    for (int i = 0; i < c->head_dim / 2; i++)
        cJSON_AddItemToArray(inv, cJSON_CreateNumber(m->w.rope_inv_freq[i]));
    if (m->tok) {
        cJSON *t = cJSON_AddObjectToObject(root, "tokenizer");
        cJSON_AddStringToObject(t, "kind", flx_tokenizer_get_kind(m->tok) == FLX_TOK_BPE ? "bpe" : "spm");
        cJSON_AddNumberToObject(t, "n_vocab", flx_tokenizer_n_vocab(m->tok));
        cJSON_AddNumberToObject(t, "bos_id", flx_tokenizer_bos(m->tok));
        cJSON_AddNumberToObject(t, "eos_id", flx_tokenizer_eos(m->tok));
        cJSON_AddBoolToObject(t, "adds_bos", flx_tokenizer_adds_bos(m->tok));
    } else {
        cJSON_AddNullToObject(root, "tokenizer");
    }
    if (m->tok_note[0]) cJSON_AddStringToObject(root, "tokenizer_note", m->tok_note);
    cJSON_AddNumberToObject(root, "load_seconds", seconds);
    return root;
}

static void describe_text(const flx_model *m, double seconds)
{
    const flx_llama_config *c = &m->cfg;
    printf("model:       %s\n", m->path);
    printf("format:      %s\n", m->format);
    printf("config:      vocab %d, hidden %d, layers %d, heads %d (kv %d, head_dim %d), ffn %d,\n"
           "             max positions %d, rms_norm_eps %g, %s head\n",
           c->n_vocab, c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff,
           c->max_seq_len, (double)c->rms_eps, c->tie_embeddings ? "tied" : "separate");
    printf("rope:        theta %g, %s pairs", c->rope_theta,
           c->rope_pairing == FLX_ROPE_ADJACENT ? "adjacent (GGUF)" : "split-half (HF)");
    if (c->rope_llama3)
        printf(", llama3 scaling (factor %g, low %g, high %g, original %d)", c->rope_factor,
               c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_max_pos);
    if (m->rope_freqs_tensor) printf(", divisors from rope_freqs.weight");
    printf("\n");
    printf("bos / eos:   %d / %d\n", c->bos_id, c->eos_id);
    printf("parameters:  %lld (%.2f M)\n", (long long)m->n_params, (double)m->n_params / 1e6);
    printf("tensors:     %d (%s)\n", m->n_tensors, m->dtypes);
    printf("weights:     %zu bytes as fp32 (%.3f GiB)\n", m->weight_bytes_f32,
           (double)m->weight_bytes_f32 / (1024.0 * 1024.0 * 1024.0));
    if (m->tok)
        printf("tokenizer:   %s, %d tokens, bos %d, eos %d%s\n", tok_kind(m->tok),
               flx_tokenizer_n_vocab(m->tok), flx_tokenizer_bos(m->tok), flx_tokenizer_eos(m->tok),
               flx_tokenizer_adds_bos(m->tok) ? ", adds BOS" : "");
    else if (m->tok_note[0])
        printf("tokenizer:   not loaded: %s\n", m->tok_note);
    else
        printf("tokenizer:   none\n");
    printf("load time:   %.3f s\n", seconds);
}

int flx_cmd_info(int argc, char **argv)
{
    info_args a = {0};
    const cli_group g[] = {{info_opts, &a, NULL}};
    const char *pos[1];
    int n_pos, prc = cli_parse(&info_spec, g, 1, argc, argv, pos, &n_pos);
    if (prc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (prc || (n_pos && (prc = cli_positional_path(CMD, "--model", &a.model, pos[0])))) return prc;
    if (!a.model) return cli_usage_error(CMD, "the model PATH is required");
    const char *model = a.model, *json = a.json;
    long long threads = a.threads;
    int orc = cli_check_output(CMD, "--json", json);
    if (orc) return orc;
    if (flx_qmodel_is_file(model)) return flx_info_flxq(model, json);   /* a quantized .flxq */

    flx_error err = {0};
    flx_model m;
    double t0 = flx_now_seconds();
    if (flx_model_load_ex(&m, model, (int)threads, isatty(2), &err)) return cli_fail(CMD, &err);
    double seconds = flx_now_seconds() - t0;
    int rc = FLX_EXIT_OK;
    if (json) {
        cJSON *root = describe_json(&m, seconds);
        char *text = root ? cJSON_Print(root) : NULL;
        cJSON_Delete(root);
        rc = cli_write_text(CMD, json, text, "\n");
        cJSON_free(text);
    }
    if (rc == FLX_EXIT_OK) describe_text(&m, seconds);
    flx_model_free(&m);
    return rc;
}
