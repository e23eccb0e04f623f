/* GGUF reader: real files from the shared data, dequantization by hand,
 * and crafted files for the structural checks. */
#include "flx_gguf.h"
#include "load_test_util.h"

#include <math.h>

static void open_ok(flx_gguf *g, const char *path)
{
    flx_error err = {0};
    int rc = flx_gguf_open(g, path, &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
}

Test(gguf, stories260k_header_and_metadata)
{
    flx_gguf g;
    open_ok(&g, flx_test_data("stories260K/stories260K.gguf"));
    flx_error err = {0};
    cr_assert_eq(g.version, 3);
    cr_assert_eq(g.alignment, 32);
    cr_assert_eq(g.n_tensors, 47);
    cr_assert_eq(g.data_offset % 32, 0);

    flx_gguf_str s;
    cr_assert_eq(flx_gguf_get_str(&g, "general.architecture", &s, &err), FLX_OK);
    cr_assert(flx_gguf_str_eq(s, "llama"));
    int64_t v;
    cr_assert_eq(flx_gguf_get_int(&g, "llama.block_count", &v, &err), FLX_OK);
    cr_assert_eq(v, 5);
    cr_assert_eq(flx_gguf_get_int(&g, "llama.attention.head_count_kv", &v, &err), FLX_OK);
    cr_assert_eq(v, 4);
    cr_assert_eq(flx_gguf_get_int(&g, "llama.feed_forward_length", &v, &err), FLX_OK);
    cr_assert_eq(v, 172);
    double f;
    cr_assert_eq(flx_gguf_get_float(&g, "llama.rope.freq_base", &f, &err), FLX_OK);
    cr_assert_eq(f, 10000.0);
    cr_assert_eq(flx_gguf_get_float(&g, "llama.attention.layer_norm_rms_epsilon", &f, &err), FLX_OK);
    cr_assert_eq((float)f, 1e-5f);
    int b;
    cr_assert_eq(flx_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &err), FLX_OK);
    cr_assert_eq(b, 1);
    cr_assert_eq(flx_gguf_get_int(&g, "no.such.key", &v, &err), FLX_ENOTFOUND);
    /* a string key read as an integer names the key */
    cr_assert_eq(flx_gguf_get_int(&g, "general.architecture", &v, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "general.architecture"), "%s", err.msg);

    const flx_gguf_kv *kv;
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.tokens", FLX_GGUF_STRING, &kv, &err), FLX_OK);
    char **tok;
    cr_assert_eq(flx_gguf_array_strings(&g, kv, &tok, &err), FLX_OK);
    cr_assert_str_eq(tok[0], "<unk>");
    cr_assert_str_eq(tok[1], "<s>");
    cr_assert_str_eq(tok[2], "</s>");
    cr_assert_str_eq(tok[3], "<0x00>");
    cr_assert_str_eq(tok[258], "<0xFF>");
    cr_assert_null(tok[512]);
    free(tok);
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.scores", FLX_GGUF_F32, &kv, &err), FLX_OK);
    float *sc;
    cr_assert_eq(flx_gguf_array_f32(&g, kv, &sc, &err), FLX_OK);
    cr_assert_eq(sc[100], 0.0f);
    cr_assert_eq(sc[259], 0.0f);
    cr_assert_eq(sc[511], -252.0f);
    free(sc);
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.token_type", FLX_GGUF_I32, &kv, &err), FLX_OK);
    int32_t *tt;
    cr_assert_eq(flx_gguf_array_i32(&g, kv, &tt, &err), FLX_OK);
    cr_assert_eq(tt[0], 2);
    cr_assert_eq(tt[1], 3);
    cr_assert_eq(tt[3], 6);
    cr_assert_eq(tt[300], 1);
    free(tt);
    /* wrong element type is an error naming the key */
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.tokens", FLX_GGUF_I32, &kv, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokenizer.ggml.tokens"));
    flx_gguf_close(&g);
}

Test(gguf, stories260k_tensors_equal_llama2c_checkpoint)
{
    flx_gguf g;
    open_ok(&g, flx_test_data("stories260K/stories260K.gguf"));
    size_t bin_bytes;
    uint8_t *bin = read_all(flx_test_data("stories260K/stories260K.bin"), &bin_bytes);
    cr_assert_eq(bin_bytes, 1056540);

    const flx_gguf_tensor *t = flx_gguf_find_tensor(&g, "token_embd.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, FLX_GGML_F32);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 512);
    cr_assert_eq(t->bytes, 512 * 64 * 4);
    cr_assert_eq(memcmp(t->data, bin + 28, t->bytes), 0);

    t = flx_gguf_find_tensor(&g, "blk.0.attn_k.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 32);
    cr_assert_eq(memcmp(t->data, bin + 214300, t->bytes), 0);   /* wk layer 0, unpermuted */
    t = flx_gguf_find_tensor(&g, "blk.4.ffn_down.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->ne[0], 172);
    cr_assert_eq(t->ne[1], 64);
    cr_assert_eq(memcmp(t->data, bin + 599580 + 4 * 64 * 172 * 4, t->bytes), 0);
    t = flx_gguf_find_tensor(&g, "output_norm.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_dims, 1);
    cr_assert_eq(memcmp(t->data, bin + 1039900, 256), 0);
    cr_assert_null(flx_gguf_find_tensor(&g, "output.weight"));
    free(bin);
    flx_gguf_close(&g);
}

Test(gguf, tiny_llama3_bf16_and_rope_freqs)
{
    flx_gguf g;
    open_ok(&g, flx_test_data("tiny-llama3-random.gguf"));
    flx_error err = {0};
    int64_t v;
    cr_assert_eq(flx_gguf_get_int(&g, "tokenizer.ggml.bos_token_id", &v, &err), FLX_OK);
    cr_assert_eq(v, 128000);
    const flx_gguf_kv *kv;
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.merges", FLX_GGUF_STRING, &kv, &err), FLX_OK);
    cr_assert_eq(kv->arr_count, 280147);
    cr_assert_eq(flx_gguf_get_array(&g, "tokenizer.ggml.tokens", FLX_GGUF_STRING, &kv, &err), FLX_OK);
    cr_assert_eq(kv->arr_count, 128256);
    char **tok;
    cr_assert_eq(flx_gguf_array_strings(&g, kv, &tok, &err), FLX_OK);
    cr_assert_str_eq(tok[128000], "<|begin_of_text|>");
    cr_assert_str_eq(tok[0], "!");
    free(tok);

    const flx_gguf_tensor *t = flx_gguf_find_tensor(&g, "token_embd.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, FLX_GGML_BF16);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 128256);
    t = flx_gguf_find_tensor(&g, "blk.1.attn_norm.weight");
    cr_assert_eq(t->type, FLX_GGML_F32);
    t = flx_gguf_find_tensor(&g, "rope_freqs.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->type, FLX_GGML_F32);
    cr_assert_eq(t->n_elems, 8);
    float rf[8];
    flx_ggml_dequantize(t->type, t->data, rf, 8);
    const float want[8] = {1, 1, 1, 1, 3.2922626f, 32, 32, 32};
    for (int i = 0; i < 8; i++) cr_assert_float_eq(rf[i], want[i], 1e-6f * want[i], "i=%d", i);
    flx_gguf_close(&g);
}

Test(gguf, dequantize_blocks_by_hand)
{
    /* Q8_0: d = 0.5 (fp16 0x3800), qs = -127..., x = q * d */
    uint8_t q8[34];
    q8[0] = 0x00; q8[1] = 0x38;
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j * 8 - 127);
    float out[32];
    flx_ggml_dequantize(FLX_GGML_Q8_0, q8, out, 32);
    for (int j = 0; j < 32; j++) cr_assert_eq(out[j], (float)(j * 8 - 127) * 0.5f, "j=%d", j);

    /* Q4_0: d = -2 (fp16 0xC000); byte j = (hi << 4) | lo with lo = j, hi = 15 - j */
    uint8_t q4[18];
    q4[0] = 0x00; q4[1] = 0xC0;
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(((15 - j) << 4) | j);
    flx_ggml_dequantize(FLX_GGML_Q4_0, q4, out, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(out[j], (float)(j - 8) * -2.0f, "j=%d", j);
        cr_assert_eq(out[j + 16], (float)(15 - j - 8) * -2.0f, "j=%d", j + 16);
    }

    uint16_t h[3] = {0x3C00, 0xC000, 0x7BFF};   /* 1, -2, 65504 */
    flx_ggml_dequantize(FLX_GGML_F16, h, out, 3);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -2.0f);
    cr_assert_eq(out[2], 65504.0f);
    uint16_t bf[2] = {0x3F80, 0xC0A0};           /* 1, -5 */
    flx_ggml_dequantize(FLX_GGML_BF16, bf, out, 2);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[1], -5.0f);
    cr_assert_eq(flx_ggml_block_bytes(FLX_GGML_Q4_K), 144);
    cr_assert_eq(flx_ggml_block_elems(FLX_GGML_Q4_K), 256);
}

/* A small valid file: nested arrays, every scalar type, one tensor. */
static tbuf crafted_file(void)
{
    tgguf g = {0};
    tg_u32(&g, "general.alignment", 64);
    tg_key(&g, "a.u8", 0); tb_u8(&g.kv, 200);
    tg_key(&g, "a.i8", 1); tb_u8(&g.kv, 0xFF);
    tg_key(&g, "a.u64", 10); tb_u64(&g.kv, 1ull << 40);
    tg_key(&g, "a.i16", 3); tb_u16(&g.kv, 0x8000);
    tg_key(&g, "a.f64", 12);
    double d = 0.25;
    tb_bytes(&g.kv, &d, 8);
    /* array of 2 arrays of u16 */
    tg_key(&g, "a.nested", 9);
    tb_u32(&g.kv, 9);
    tb_u64(&g.kv, 2);
    for (int i = 0; i < 2; i++) {
        tb_u32(&g.kv, 2);
        tb_u64(&g.kv, 3);
        for (int j = 0; j < 3; j++) tb_u16(&g.kv, (uint16_t)(i * 10 + j));
    }
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i;
    uint64_t ne[2] = {8, 8};
    tg_tensor(&g, "w", 2, ne, FLX_GGML_F32, w, sizeof w);
    return tg_finish(&g);
}

Test(gguf, crafted_scalars_nested_arrays_alignment)
{
    tbuf f = crafted_file();
    /* the writer pads to 32; move the data to the next multiple of 64 if needed */
    size_t data_at = f.n - 256;
    tbuf g2 = {0};
    tb_bytes(&g2, f.p, data_at);
    while (g2.n % 64) tb_u8(&g2, 0);
    tb_bytes(&g2, f.p + data_at, 256);
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/c.gguf", dir);
    write_bytes(path, g2.p, g2.n);
    flx_gguf g;
    open_ok(&g, path);
    flx_error err = {0};
    int64_t v;
    double x;
    cr_assert_eq(g.alignment, 64);
    cr_assert_eq(flx_gguf_get_int(&g, "a.u8", &v, &err), FLX_OK);
    cr_assert_eq(v, 200);
    cr_assert_eq(flx_gguf_get_int(&g, "a.i8", &v, &err), FLX_OK);
    cr_assert_eq(v, -1);
    cr_assert_eq(flx_gguf_get_int(&g, "a.u64", &v, &err), FLX_OK);
    cr_assert_eq(v, 1ll << 40);
    cr_assert_eq(flx_gguf_get_int(&g, "a.i16", &v, &err), FLX_OK);
    cr_assert_eq(v, -32768);
    cr_assert_eq(flx_gguf_get_float(&g, "a.f64", &x, &err), FLX_OK);
    cr_assert_eq(x, 0.25);
    const flx_gguf_kv *kv = flx_gguf_find(&g, "a.nested");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->arr_type, FLX_GGUF_ARRAY);
    cr_assert_eq(kv->arr_count, 2);
    cr_assert_eq(kv->value_bytes, 12 + 2 * (12 + 6));
    const flx_gguf_tensor *t = flx_gguf_find_tensor(&g, "w");
    cr_assert_eq(t->offset % 64, 0);
    float w[64];
    flx_ggml_dequantize(t->type, t->data, w, 64);
    cr_assert_eq(w[63], 63.0f);
    flx_gguf_close(&g);
    free(f.p);
    free(g2.p);
}

static int open_bytes(const void *p, size_t n, flx_error *err)
{
    static int seq;
    static char dir[256];
    if (!dir[0]) snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    char path[512];
    snprintf(path, sizeof path, "%s/m%d.gguf", dir, seq++);
    write_bytes(path, p, n);
    flx_gguf g;
    int rc = flx_gguf_open(&g, path, err);
    flx_gguf_close(&g);
    return rc;
}

Test(gguf, truncation_at_every_offset_fails_cleanly)
{
    size_t n;
    uint8_t *p = read_all(flx_test_data("stories260K/stories260K.gguf"), &n);
    flx_gguf g0;
    open_ok(&g0, flx_test_data("stories260K/stories260K.gguf"));
    size_t header_end = g0.data_offset;
    flx_gguf_close(&g0);
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    /* every offset of the fixed header and the first entries, every 7th byte
     * through the rest of the metadata, then a sample through the data */
    for (size_t cut = 0; cut < n; cut += cut < 600 ? 1 : cut < header_end ? 7 : 40009) {
        write_bytes(path, p, cut);
        flx_gguf g;
        flx_error err = {0};
        int rc = flx_gguf_open(&g, path, &err);
        cr_assert_neq(rc, FLX_OK, "cut at %zu accepted", cut);
        cr_assert(strstr(err.msg, path), "cut %zu: message does not name the file: %s", cut, err.msg);
    }
    free(p);
}

Test(gguf, malformed_headers)
{
    flx_error err = {0};
    tgguf g = {0};
    tg_str(&g, "general.architecture", "llama");
    float w[32] = {0};
    uint64_t ne1[1] = {32};
    tg_tensor(&g, "t", 1, ne1, FLX_GGML_F32, w, sizeof w);
    tbuf f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_OK, "%s", err.msg);

    tbuf m = {0};
    tb_bytes(&m, f.p, f.n);
    memcpy(m.p, "GGUG", 4);
    cr_assert_eq(open_bytes(m.p, m.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);

    memcpy(m.p, "GGUF", 4);
    m.p[4] = 2;
    cr_assert_eq(open_bytes(m.p, m.n, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "version"), "%s", err.msg);
    m.p[4] = 3;

    /* huge counts are rejected before any allocation */
    uint64_t huge = 1ull << 60;
    memcpy(m.p + 8, &huge, 8);
    cr_assert_eq(open_bytes(m.p, m.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tensor_count"), "%s", err.msg);
    memcpy(m.p + 8, f.p + 8, 8);
    memcpy(m.p + 16, &huge, 8);
    cr_assert_eq(open_bytes(m.p, m.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "metadata_kv_count"), "%s", err.msg);
    memcpy(m.p + 16, f.p + 16, 8);

    /* a string length larger than the file */
    memcpy(m.p + 24, &huge, 8);
    cr_assert_eq(open_bytes(m.p, m.n, &err), FLX_EFORMAT);
    free(m.p);
    free(f.p);

    /* array with a crafted element count */
    g = (tgguf){0};
    tg_key(&g, "big.array", 9);
    tb_u32(&g.kv, 4);
    tb_u64(&g.kv, 1ull << 40);
    tb_u32(&g.kv, 7);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "big.array"), "%s", err.msg);
    free(f.p);

    /* unknown value type, bad bool */
    g = (tgguf){0};
    tg_key(&g, "odd.type", 13);
    tb_u32(&g.kv, 0);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "odd.type"), "%s", err.msg);
    free(f.p);
    g = (tgguf){0};
    tg_bool(&g, "flag", 2);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "flag"), "%s", err.msg);
    free(f.p);

    /* deeply nested arrays */
    g = (tgguf){0};
    tg_key(&g, "deep", 9);
    for (int i = 0; i < 20; i++) { tb_u32(&g.kv, 9); tb_u64(&g.kv, 1); }
    tb_u32(&g.kv, 0);
    tb_u64(&g.kv, 0);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "deep"), "%s", err.msg);
    free(f.p);

    /* duplicate key */
    g = (tgguf){0};
    tg_u32(&g, "k", 1);
    tg_u32(&g, "k", 2);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "twice"), "%s", err.msg);
    free(f.p);

    /* bad alignment value */
    g = (tgguf){0};
    tg_u32(&g, "general.alignment", 12);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "general.alignment"), "%s", err.msg);
    free(f.p);
}

Test(gguf, malformed_tensor_infos)
{
    flx_error err = {0};
    float w[64] = {0};
    uint64_t ne[2] = {8, 8};

    /* too many dims */
    tgguf g = {0};
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    tg_tensor(&g, "t5", 5, ne5, FLX_GGML_F32, w, 4);
    tbuf f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "t5") && strstr(err.msg, "n_dims"), "%s", err.msg);
    free(f.p);

    /* a huge dimension: data would run past the end */
    g = (tgguf){0};
    uint64_t neh[2] = {8, 1ull << 40};
    tg_tensor(&g, "huge", 2, neh, FLX_GGML_F32, w, sizeof w);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "huge") && strstr(err.msg, "past the end"), "%s", err.msg);
    free(f.p);

    /* element count overflow */
    g = (tgguf){0};
    uint64_t neo[3] = {1ull << 30, 1ull << 30, 1ull << 30};
    tg_tensor(&g, "ovf", 3, neo, FLX_GGML_F32, w, 4);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "ovf"), "%s", err.msg);
    free(f.p);

    /* unknown ggml type */
    g = (tgguf){0};
    tg_tensor(&g, "weird", 2, ne, 99, w, sizeof w);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "weird"), "%s", err.msg);
    free(f.p);

    /* Q8_0 row not a multiple of the block */
    g = (tgguf){0};
    uint64_t neq[2] = {16, 2};
    tg_tensor(&g, "q", 2, neq, FLX_GGML_Q8_0, w, 34);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "block"), "%s", err.msg);
    free(f.p);

    /* two tensors, then corrupt the second offset: misaligned, overlapping, out of range */
    g = (tgguf){0};
    tg_tensor(&g, "a", 2, ne, FLX_GGML_F32, w, sizeof w);
    tg_tensor(&g, "b", 2, ne, FLX_GGML_F32, w, sizeof w);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_OK, "%s", err.msg);
    /* offset field of "b": header 24 + info of a (8+1+4+16+4+8 = 41) + 8+1+4+16+4 */
    size_t off_b = 24 + 41 + 8 + 1 + 4 + 16 + 4;
    uint64_t cur;
    memcpy(&cur, f.p + off_b, 8);
    cr_assert_eq(cur, 256, "test layout assumption");
    uint64_t bad = 100;
    memcpy(f.p + off_b, &bad, 8);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "alignment"), "%s", err.msg);
    bad = 128;
    memcpy(f.p + off_b, &bad, 8);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "overlap"), "%s", err.msg);
    bad = 1ull << 50;
    memcpy(f.p + off_b, &bad, 8);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "past the end"), "%s", err.msg);
    free(f.p);

    /* duplicate tensor name */
    g = (tgguf){0};
    tg_tensor(&g, "a", 2, ne, FLX_GGML_F32, w, sizeof w);
    tg_tensor(&g, "a", 2, ne, FLX_GGML_F32, w, sizeof w);
    f = tg_finish(&g);
    cr_assert_eq(open_bytes(f.p, f.n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "twice"), "%s", err.msg);
    free(f.p);
}
