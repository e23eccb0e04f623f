/* safetensors reader on the shared files, writer round trips, and crafted
 * malformed headers. */
#include "flx_safetensors.h"
#include "load_test_util.h"

static void open_ok(flx_safetensors *st, const char *path)
{
    flx_error err = {0};
    int rc = flx_st_open(st, path, &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
}

static float f32_at(const uint8_t *p, size_t i)
{
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
}

Test(safetensors, stories260k_layout_and_values)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", flx_test_data("stories260K/hf/model.safetensors"));
    flx_safetensors st;
    open_ok(&st, path);
    cr_assert_eq(st.n_tensors, 47);
    cr_assert_str_eq(flx_st_meta(&st, "format"), "pt");
    cr_assert_str_eq(st.tensors[0].name, "model.embed_tokens.weight");
    cr_assert_str_eq(st.tensors[46].name, "model.norm.weight");
    cr_assert_eq(st.data_offset % 8, 0);
    const flx_st_tensor *t = flx_st_find(&st, "model.layers.0.self_attn.k_proj.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, FLX_ST_F32);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->shape[0], 32);
    cr_assert_eq(t->shape[1], 64);
    cr_assert_null(flx_st_find(&st, "lm_head.weight"));

    size_t bin_bytes;
    uint8_t *bin = read_all(flx_test_data("stories260K/stories260K.bin"), &bin_bytes);
    t = flx_st_find(&st, "model.embed_tokens.weight");
    cr_assert_eq(memcmp(t->data, bin + 28, t->bytes), 0);
    t = flx_st_find(&st, "model.layers.0.mlp.gate_proj.weight");
    cr_assert_eq(memcmp(t->data, bin + 379420, t->bytes), 0);
    /* q_proj rows are permuted to split-half order inside each head of 8:
     * HF row a*4 + i == llama2.c row 2i + a */
    t = flx_st_find(&st, "model.layers.0.self_attn.q_proj.weight");
    const uint8_t *wq = bin + 132380;
    for (int h = 0; h < 8; h++)
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < 4; i++) {
                size_t hf_row = (size_t)(h * 8 + a * 4 + i), l2_row = (size_t)(h * 8 + 2 * i + a);
                cr_assert_eq(memcmp(t->data + hf_row * 256, wq + l2_row * 256, 256), 0,
                             "head %d a %d i %d", h, a, i);
            }
    free(bin);
    flx_st_close(&st);
}

Test(safetensors, bf16_copy_is_rounded_f32)
{
    flx_safetensors a, b;
    open_ok(&a, flx_test_data("stories260K/hf/model.safetensors"));
    open_ok(&b, flx_test_data("stories260K/hf-bf16/model.safetensors"));
    cr_assert_eq(a.n_tensors, b.n_tensors);
    for (size_t k = 0; k < a.n_tensors; k++) {
        const flx_st_tensor *ta = &a.tensors[k];
        const flx_st_tensor *tb = flx_st_find(&b, ta->name);
        cr_assert_not_null(tb, "%s", ta->name);
        cr_assert_eq(tb->dtype, FLX_ST_BF16);
        cr_assert_eq(tb->n_elems, ta->n_elems);
        for (int64_t i = 0; i < ta->n_elems; i++) {
            uint16_t h;
            memcpy(&h, tb->data + 2 * i, 2);
            cr_assert_eq(h, flx_f32_to_bf16(f32_at(ta->data, (size_t)i)), "%s[%lld]", ta->name,
                         (long long)i);
        }
    }
    flx_st_close(&a);
    flx_st_close(&b);
}

Test(safetensors, tiny_llama3_shapes)
{
    flx_safetensors st;
    open_ok(&st, flx_test_data("tiny-llama3-random/model.safetensors"));
    cr_assert_eq(st.n_tensors, 20);
    for (size_t i = 0; i < st.n_tensors; i++) cr_assert_eq(st.tensors[i].dtype, FLX_ST_BF16);
    const flx_st_tensor *t = flx_st_find(&st, "model.embed_tokens.weight");
    cr_assert_eq(t->shape[0], 128256);
    cr_assert_eq(t->shape[1], 64);
    t = flx_st_find(&st, "model.layers.1.mlp.down_proj.weight");
    cr_assert_eq(t->shape[0], 64);
    cr_assert_eq(t->shape[1], 256);
    flx_st_close(&st);
}

Test(safetensors, rewrite_of_stories260k_is_byte_identical)
{
    /* The shared file uses the same conventions as our writer (compact JSON,
     * metadata first, dtype/shape/data_offsets, space padding to 8 bytes). */
    const char *src = flx_test_data("stories260K/hf/model.safetensors");
    char src_path[4096];
    snprintf(src_path, sizeof src_path, "%s", src);
    flx_safetensors st;
    open_ok(&st, src_path);
    flx_st_desc *d = calloc(st.n_tensors, sizeof *d);
    const void **data = calloc(st.n_tensors, sizeof *data);
    for (size_t i = 0; i < st.n_tensors; i++) {
        d[i].name = st.tensors[i].name;
        d[i].dtype = st.tensors[i].dtype;
        d[i].n_dims = st.tensors[i].n_dims;
        memcpy(d[i].shape, st.tensors[i].shape, sizeof d[i].shape);
        data[i] = st.tensors[i].data;
    }
    char out[512];
    snprintf(out, sizeof out, "%s/re.safetensors", flx_test_tmpdir());
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    flx_error err = {0};
    cr_assert_eq(flx_st_write(out, d, data, st.n_tensors, mk, mv, 1, &err), FLX_OK, "%s", err.msg);
    size_t na, nb;
    uint8_t *a = read_all(src_path, &na), *b = read_all(out, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na), 0);
    free(a);
    free(b);
    free(d);
    free(data);
    flx_st_close(&st);
}

Test(safetensors, writer_all_dtypes_round_trip)
{
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[2] = {0, 255};
    int32_t i32[2][2] = {{-1, 2}, {1 << 30, -7}};
    float f32[4] = {1.5f, -0.0f, 3e-38f, 65504.0f};
    uint16_t bf16[2] = {0x3F80, 0xC0A0};
    uint16_t f16[1] = {0x3C00};
    flx_st_desc d[7] = {
        {"a/i8", FLX_ST_I8, 1, {3}},
        {"u8 \"quoted\"", FLX_ST_U8, 1, {2}},
        {"i32", FLX_ST_I32, 2, {2, 2}},
        {"f32", FLX_ST_F32, 3, {1, 2, 2}},
        {"bf16", FLX_ST_BF16, 1, {2}},
        {"f16.scalar", FLX_ST_F16, 0, {0}},
        {"empty", FLX_ST_F32, 2, {0, 5}},
    };
    const void *data[7] = {i8, u8, i32, f32, bf16, f16, NULL};
    char out[512];
    snprintf(out, sizeof out, "%s/all.safetensors", flx_test_tmpdir());
    const char *mk[] = {"format", "note"}, *mv[] = {"pt", "line\nbreak"};
    flx_error err = {0};
    cr_assert_eq(flx_st_write(out, d, data, 7, mk, mv, 2, &err), FLX_OK, "%s", err.msg);
    flx_safetensors st;
    open_ok(&st, out);
    cr_assert_eq(st.n_tensors, 7);
    cr_assert_eq(st.data_offset % 8, 0);
    cr_assert_str_eq(flx_st_meta(&st, "note"), "line\nbreak");
    for (int i = 0; i < 7; i++) {
        cr_assert_str_eq(st.tensors[i].name, d[i].name);
        cr_assert_eq(st.tensors[i].dtype, d[i].dtype);
        cr_assert_eq(st.tensors[i].n_dims, d[i].n_dims);
        if (data[i]) cr_assert_eq(memcmp(st.tensors[i].data, data[i], st.tensors[i].bytes), 0);
    }
    cr_assert_eq(st.tensors[2].bytes, 16);
    cr_assert_eq(st.tensors[5].bytes, 2);    /* rank 0 = one element */
    cr_assert_eq(st.tensors[6].bytes, 0);
    /* packed in order, no gaps: the file ends at the last tensor */
    cr_assert_eq(st.tensors[5].offset + 2, st.map.bytes);
    flx_st_close(&st);
    /* exact header of a one-tensor file */
    flx_st_desc one = {"w", FLX_ST_F32, 1, {2}};
    const void *od[1] = {f32};
    cr_assert_eq(flx_st_write(out, &one, od, 1, NULL, NULL, 0, &err), FLX_OK, "%s", err.msg);
    size_t n;
    uint8_t *b = read_all(out, &n);
    const char *want = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hl = strlen(want);   /* 54 -> padded to 56 */
    cr_assert_eq(b[0], 56);
    cr_assert_eq(memcmp(b + 8, want, hl), 0);
    cr_assert_eq(b[8 + hl], ' ');
    cr_assert_eq(b[8 + hl + 1], ' ');
    cr_assert_eq(n, 8 + 56 + 8);
    free(b);
}

Test(safetensors, streaming_writer_checks_sizes)
{
    flx_st_desc d[2] = {{"a", FLX_ST_F32, 1, {3}}, {"b", FLX_ST_U8, 1, {1}}};
    char out[512];
    snprintf(out, sizeof out, "%s/s.safetensors", flx_test_tmpdir());
    flx_error err = {0};
    flx_st_writer w;
    float v[3] = {1, 2, 3};
    uint8_t u = 9;
    cr_assert_eq(flx_st_writer_begin(&w, out, d, 2, NULL, NULL, 0, &err), FLX_OK);
    cr_assert_eq(flx_st_writer_write(&w, v, 5, &err), FLX_OK);
    cr_assert_eq(flx_st_writer_write(&w, (uint8_t *)v + 5, 7, &err), FLX_OK);
    /* commit with "b" missing fails and leaves no file */
    cr_assert_eq(flx_st_writer_commit(&w, &err), FLX_EINVAL);
    cr_assert(!flx_file_exists(out));
    cr_assert_eq(flx_st_writer_begin(&w, out, d, 2, NULL, NULL, 0, &err), FLX_OK);
    cr_assert_eq(flx_st_writer_write(&w, v, 12, &err), FLX_OK);
    cr_assert_eq(flx_st_writer_write(&w, &u, 1, &err), FLX_OK);
    cr_assert_eq(flx_st_writer_write(&w, &u, 1, &err), FLX_EINVAL);   /* too much */
    flx_st_writer_abort(&w);
    cr_assert(!flx_file_exists(out));
}

/* Writes 8-byte length + header text + data bytes and opens it. */
static int open_crafted(const char *header, size_t data_bytes, flx_error *err)
{
    static char dir[256];
    static int seq;
    if (!dir[0]) snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    tbuf b = {0};
    tb_u64(&b, strlen(header));
    tb_bytes(&b, header, strlen(header));
    for (size_t i = 0; i < data_bytes; i++) tb_u8(&b, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/c%d.safetensors", dir, seq++);
    write_bytes(path, b.p, b.n);
    free(b.p);
    flx_safetensors st;
    int rc = flx_st_open(&st, path, err);
    if (rc == FLX_OK) flx_st_close(&st);
    else cr_assert(strstr(err->msg, path), "message does not name the file: %s", err->msg);
    return rc;
}

#define EXPECT_BAD(hdr, nbytes, code, word)                                                   \
    do {                                                                                      \
        flx_error e_ = {0};                                                                   \
        cr_assert_eq(open_crafted(hdr, nbytes, &e_), code, "%s -> %s", hdr, e_.msg);          \
        cr_assert(strstr(e_.msg, word), "%s: message lacks '%s': %s", hdr, word, e_.msg);     \
    } while (0)

Test(safetensors, malformed_headers)
{
    flx_error err = {0};
    cr_assert_eq(open_crafted("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                              &err), FLX_OK, "%s", err.msg);
    EXPECT_BAD("[1,2]", 0, FLX_EFORMAT, "'{'");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",", 0, FLX_EFORMAT, "malformed");
    EXPECT_BAD("{\"w\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
               FLX_EUNSUPPORTED, "dtype");
    EXPECT_BAD("{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FLX_EFORMAT, "dtype");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12, FLX_EFORMAT,
               "need 12");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, FLX_EFORMAT,
               "outside");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, FLX_EFORMAT,
               "data_offsets");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, FLX_EFORMAT,
               "shape[0]");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, FLX_EFORMAT,
               "shape[0]");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,8]}}", 8, FLX_EFORMAT, "overflow");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, FLX_EFORMAT, "data_offsets");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, FLX_EFORMAT,
               "overlap");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, FLX_EFORMAT,
               "twice");
    EXPECT_BAD("{\"__metadata__\":{\"format\":1}}", 0, FLX_EFORMAT, "__metadata__");
    EXPECT_BAD("{\"w\":5}", 0, FLX_EFORMAT, "not an object");
    EXPECT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, FLX_EFORMAT,
               "after the header");

    /* header length beyond the file / beyond 100 MB */
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/len.safetensors", dir);
    tbuf b = {0};
    tb_u64(&b, 1ull << 40);
    tb_bytes(&b, "{}", 2);
    write_bytes(path, b.p, b.n);
    flx_safetensors st;
    cr_assert_eq(flx_st_open(&st, path, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "header length"), "%s", err.msg);
    write_bytes(path, b.p, 5);
    cr_assert_eq(flx_st_open(&st, path, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
    free(b.p);
}

Test(safetensors, truncation_never_crashes)
{
    char src[4096];
    snprintf(src, sizeof src, "%s", flx_test_data("stories260K/hf-bf16/model.safetensors"));
    size_t n;
    uint8_t *p = read_all(src, &n);
    uint64_t hl;
    memcpy(&hl, p, 8);
    char path[512];
    snprintf(path, sizeof path, "%s/t.safetensors", flx_test_tmpdir());
    for (size_t cut = 0; cut < n; cut += cut < 8 + hl ? 7 : 20011) {
        write_bytes(path, p, cut);
        flx_safetensors st;
        flx_error err = {0};
        cr_assert_neq(flx_st_open(&st, path, &err), FLX_OK, "cut %zu accepted", cut);
        cr_assert(strstr(err.msg, path), "%s", err.msg);
    }
    free(p);
}
