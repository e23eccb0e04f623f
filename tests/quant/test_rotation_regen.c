/* rotation_regen: `--rotate hadamard` rotations regenerated from the
 * generator docs/quant.md documents (written here again from the text:
 * splitmix64 seeding of xoshiro256**, one 64-bit sub-seed per matrix, one
 * sign per row from the top bit, Sylvester H / sqrt(n)), compared bit for
 * bit with what `quantize --save-rotation` exports; the exported file
 * loads back (--rotate FILE) and gives the same codes. */
#include "flx_qmodel.h"
#include "flx_safetensors.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

static uint64_t doc_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } doc_rng;

static void doc_seed(doc_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = doc_splitmix(&seed);
}

static uint64_t doc_next(doc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t out = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}

/* diag(signs) . H / sqrt(n) from a sub-seed */
static void doc_random_hadamard(float *r, int n, uint64_t sub)
{
    doc_rng g;
    doc_seed(&g, sub);
    const float v = (float)(1.0 / sqrt((double)n));
    for (int i = 0; i < n; i++) {
        int neg = (int)(doc_next(&g) >> 63);
        for (int j = 0; j < n; j++) {
            int odd = __builtin_popcount((unsigned)(i & j)) & 1;
            r[i * n + j] = (odd ^ neg) ? -v : v;
        }
    }
}

Test(rotation_regen, hadamard_rotations_from_the_documented_generator, .timeout = 120)
{
    char hf[4096], cmd[16384], out[8192], rot[600], f1[600], f2[600];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    const char *dir = flx_test_tmpdir();
    snprintf(rot, sizeof rot, "%s/rot.safetensors", dir);
    snprintf(f1, sizeof f1, "%s/a.flxq", dir);
    snprintf(f2, sizeof f2, "%s/b.flxq", dir);
    const uint64_t seed = 77;
    snprintf(cmd, sizeof cmd,
             "%s quantize --model %s --recipe w4a16 --rotate hadamard --seed %llu --save-rotation %s --out %s 2>&1",
             flx_test_bin(), hf, (unsigned long long)seed, rot, f1);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a16 --save-rotation %s --out %s 2>&1",
             flx_test_bin(), hf, rot, f2);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 2, "--rotate none has no R1 to save: %s", out);

    flx_safetensors st;
    flx_error err = {0};
    cr_assert_eq(flx_st_open(&st, rot, &err), FLX_OK, "%s", err.msg);
    const int d = 64, hd = 8, f = 256, n_layers = 5;
    float *want = malloc((size_t)f * f * 4);
    doc_rng g;
    doc_seed(&g, seed);
    for (int l = -1; l < n_layers; l++) {
        char name[16];
        int n = l < 0 ? d : hd;
        if (l < 0) snprintf(name, sizeof name, "R1");
        else snprintf(name, sizeof name, "R2.%d", l);
        doc_random_hadamard(want, n, doc_next(&g));
        const flx_st_tensor *t = flx_st_find(&st, name);
        cr_assert(t != NULL && t->n_dims == 2 && t->shape[0] == n && t->shape[1] == n, "%s", name);
        cr_assert_eq(memcmp(t->data, want, (size_t)n * n * 4), 0, "%s differs from the documented generator", name);
    }
    /* R4: d_ff 172 padded to 256, the normalized Hadamard the FHT computes */
    const flx_st_tensor *t4 = flx_st_find(&st, "R4");
    cr_assert(t4 != NULL && t4->shape[0] == f && t4->shape[1] == f);
    const float *r4 = (const float *)t4->data;
    const float v = (float)(1.0 / sqrt(256.0));
    for (int i = 0; i < f; i++)
        for (int j = 0; j < f; j++)
            cr_assert(r4[i * f + j] == ((__builtin_popcount((unsigned)(i & j)) & 1) ? -v : v));
    flx_st_close(&st);
    free(want);

    /* the exported file loads back and gives the same weights */
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a16 --rotate %s --seed %llu --out %s 2>&1",
             flx_test_bin(), hf, rot, (unsigned long long)seed, f2);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    flx_qmodel a, b;
    cr_assert_eq(flx_qmodel_load(&a, f1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_qmodel_load(&b, f2, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(b.rotation, "file");
    for (int l = 0; l < n_layers; l++) {
        const flx_qtensor *x[2] = {&a.layers[l].wv, &a.layers[l].w_down}, *y[2] = {&b.layers[l].wv, &b.layers[l].w_down};
        for (int k = 0; k < 2; k++) {
            size_t n = (size_t)x[k]->n_out * x[k]->n_in;
            cr_assert_eq(memcmp(x[k]->q, y[k]->q, n), 0, "layer %d codes", l);
            cr_assert_eq(memcmp(x[k]->scale, y[k]->scale, (size_t)x[k]->n_out * 4), 0, "layer %d scales", l);
        }
    }
    cr_assert_eq(memcmp(a.tok_embd, b.tok_embd, (size_t)512 * 64 * 4), 0);
    flx_qmodel_free(&a);
    flx_qmodel_free(&b);
}
