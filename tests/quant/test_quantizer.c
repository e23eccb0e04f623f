/* quantizer: every scheme, granularity and rounding mode against
 * hand-computed cases (arithmetic in the comments), the MSE clip search
 * against a brute-force re-derivation, packing round trips, FlexLLM's
 * weight export. */
#include "flx_quant.h"
#include "test_util.h"

#include <math.h>

static void quant_all(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                      flx_qparams *p, int32_t *q)
{
    flx_quant_params(s, x, rows, cols, p);
    flx_quant_apply(s, x, rows, cols, p, q);
}

Test(quantizer, symmetric_int4_per_row_and_rounding)
{
    /* max|x| = 1.75 -> s = 1.75 / 7 = 0.25 (exact).
     * x/s = 3, -7, 1.5, 0.5, 2.5:
     *   half away: 3, -7, 2, 1, 3      half even: 3, -7, 2, 0, 2 */
    const float x[5] = {0.75f, -1.75f, 0.375f, 0.125f, 0.625f};
    flx_qspec s = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
    flx_qparams p;
    int32_t q[5];
    quant_all(&s, x, 1, 5, &p, q);
    cr_assert_eq(p.scale, 0.25f);
    cr_assert_eq(p.zero, 0.0f);
    const int32_t away[5] = {3, -7, 2, 1, 3}, even[5] = {3, -7, 2, 0, 2};
    for (int i = 0; i < 5; i++) cr_assert_eq(q[i], away[i], "i=%d", i);
    s.round = FLX_QR_HALF_EVEN;
    quant_all(&s, x, 1, 5, &p, q);
    for (int i = 0; i < 5; i++) cr_assert_eq(q[i], even[i], "i=%d", i);
    /* dequantized: s*q */
    cr_assert_eq(flx_dequantize1(&s, p, -7), -1.75f);
    /* static scale 0.25: 2.2/0.25 = 8.8 -> 9 -> clamp 7; -2.2 -> -9 -> clamp -8 */
    flx_qparams st = {0.25f, 0.0f};
    cr_assert_eq(flx_quantize1(&s, st, 2.2f), 7);
    cr_assert_eq(flx_quantize1(&s, st, -2.2f), -8);
    cr_assert_eq(flx_quantize1(&s, st, NAN), 0);
    cr_assert_eq(flx_quantize1(&s, st, INFINITY), 7);
    /* negative ties: -2.5 -> away -3, even -2 */
    cr_assert_eq(flx_qround_apply(FLX_QR_HALF_AWAY, -2.5f), -3.0f);
    cr_assert_eq(flx_qround_apply(FLX_QR_HALF_EVEN, -2.5f), -2.0f);
    /* a zero row: s = 1, codes 0 */
    const float z[3] = {0, 0, 0};
    quant_all(&s, z, 1, 3, &p, q);
    cr_assert_eq(p.scale, 1.0f);
    cr_assert_eq(q[0], 0);
}

Test(quantizer, clip_ratio)
{
    /* clip 0.5: max 1.75 * 0.5 = 0.875 -> s = 0.125; -1.75/0.125 = -14 -> -8 */
    const float x[2] = {0.75f, -1.75f};
    flx_qspec s = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
    s.clip = 0.5f;
    flx_qparams p;
    int32_t q[2];
    quant_all(&s, x, 1, 2, &p, q);
    cr_assert_eq(p.scale, 0.125f);
    cr_assert_eq(q[0], 6);
    cr_assert_eq(q[1], -8);
}

Test(quantizer, asymmetric_integer_zero_point_spinquant)
{
    /* lo = min(-1, 0) = -1, hi = 3.5; s = 4.5/15 = 0.3f; z = round(1/0.3f) = 3.
     * q = round(x/s) + z: -1 -> -3+3 = 0; 0.5 -> round(1.67)=2 -> 5;
     * 2 -> round(6.67)=7 -> 10; 3.5 -> round(11.67)=12 -> 15.
     * x^ = s (q - z): -0.9, 0.6, 2.1, 3.6 */
    const float x[4] = {-1.0f, 0.5f, 2.0f, 3.5f};
    flx_qspec s = flx_qspec_make(4, FLX_QS_ASYM_ZP, FLX_QG_ROW, 0);
    flx_qparams p;
    int32_t q[4];
    quant_all(&s, x, 1, 4, &p, q);
    cr_assert_eq(p.scale, 4.5f / 15.0f);
    cr_assert_eq(p.zero, 3.0f);
    const int32_t want[4] = {0, 5, 10, 15};
    const float deq[4] = {-0.9f, 0.6f, 2.1f, 3.6f};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(q[i], want[i], "i=%d", i);
        cr_assert_float_eq(flx_dequantize1(&s, p, q[i]), deq[i], 1e-6f);
    }
    /* all positive: lo clamps to 0 -> z = 0, s = 2/15 */
    const float pos[2] = {1.0f, 2.0f};
    quant_all(&s, pos, 1, 2, &p, q);
    cr_assert_eq(p.zero, 0.0f);
    cr_assert_eq(p.scale, 2.0f / 15.0f);
    cr_assert_eq(q[1], 15);
    /* all zero: range becomes [-1, 1]: s = 2/15 = 0.13333334f (rounded up),
     * so -lo/s = 7.4999996 (not a tie) -> z = 7 */
    const float zero[2] = {0.0f, 0.0f};
    quant_all(&s, zero, 1, 2, &p, q);
    cr_assert_eq(p.zero, 7.0f);
    cr_assert_eq(q[0], 7);
    cr_assert_eq(flx_dequantize1(&s, p, q[0]), 0.0f);
    /* 8-bit: clamp at 255 and at 0 with static params s = 0.1, z = 128 */
    flx_qspec s8 = flx_qspec_make(8, FLX_QS_ASYM_ZP, FLX_QG_ROW, 0);
    flx_qparams st = {0.1f, 128.0f};
    cr_assert_eq(flx_quantize1(&s8, st, 100.0f), 255);
    cr_assert_eq(flx_quantize1(&s8, st, -100.0f), 0);
    cr_assert_eq(flx_quantize1(&s8, st, 1.0f), 138);    /* round(10) + 128 */
}

Test(quantizer, asymmetric_float_offset_flexllm)
{
    /* s = (3.5 - (-1)) / 15.0f = 0.3f, b = -1; q = round((x - b) / s):
     * 0/0.3 = 0; 1.5/0.3 = 5; 3/0.3 = 10; 4.5/0.3 = 15 (float quotients
     * 4.9999998, 9.9999996, 14.999999 round to 5, 10, 15). x^ = s q + b. */
    const float x[4] = {-1.0f, 0.5f, 2.0f, 3.5f};
    flx_qspec s = flx_qspec_make(4, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0);
    flx_qparams p;
    int32_t q[4];
    quant_all(&s, x, 1, 4, &p, q);
    cr_assert_eq(p.scale, 4.5f / 15.0f);
    cr_assert_eq(p.zero, -1.0f);
    const int32_t want[4] = {0, 5, 10, 15};
    for (int i = 0; i < 4; i++) cr_assert_eq(q[i], want[i], "i=%d", i);
    cr_assert_eq(flx_dequantize1(&s, p, 0), -1.0f);
    cr_assert_float_eq(flx_dequantize1(&s, p, 15), 3.5f, 1e-6f);
    /* a constant token: max == min -> s = 0 -> s = 1; q = 0; x^ = 0*1 + 2 = 2 exactly */
    const float c[3] = {2.0f, 2.0f, 2.0f};
    quant_all(&s, c, 1, 3, &p, q);
    cr_assert_eq(p.scale, 1.0f);
    cr_assert_eq(q[2], 0);
    cr_assert_eq(flx_dequantize1(&s, p, q[2]), 2.0f);
}

Test(quantizer, granularities)
{
    /* [[1, 3], [-4, 0.5]] SYM 4-bit:
     * tensor: s = 4/7 for all; 1/s = 1.75 -> 2, 3/s = 5.25 -> 5, -4/s = -7
     * row:    s0 = 3/7, s1 = 4/7; 1/s0 = 2.33 -> 2, 3/s0 = 7 */
    const float x[4] = {1.0f, 3.0f, -4.0f, 0.5f};
    flx_qspec s = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_TENSOR, 0);
    cr_assert_eq(flx_qspec_n_params(&s, 2, 2), 1);
    flx_qparams p[4];
    int32_t q[4];
    quant_all(&s, x, 2, 2, p, q);
    cr_assert_eq(p[0].scale, 4.0f / 7.0f);
    cr_assert_eq(q[0], 2);
    cr_assert_eq(q[1], 5);
    cr_assert_eq(q[2], -7);
    s.gran = FLX_QG_ROW;
    cr_assert_eq(flx_qspec_n_params(&s, 2, 2), 2);
    quant_all(&s, x, 2, 2, p, q);
    cr_assert_eq(p[0].scale, 3.0f / 7.0f);
    cr_assert_eq(p[1].scale, 4.0f / 7.0f);
    cr_assert_eq(q[0], 2);
    cr_assert_eq(q[1], 7);
    /* groups of 1 column (per head with head_dim 1): every value gets its
     * own scale, so every nonzero code is +-7 */
    s.gran = FLX_QG_GROUP;
    s.group_size = 1;
    cr_assert_eq(flx_qspec_n_params(&s, 2, 2), 4);
    quant_all(&s, x, 2, 2, p, q);
    cr_assert_eq(p[3].scale, 0.5f / 7.0f);
    for (int i = 0; i < 4; i++) cr_assert_eq(abs(q[i]), 7);
}

Test(quantizer, dynamic_fake_quant_per_group_matches_explicit_params)
{
    flx_rng rng;
    flx_rng_seed(&rng, 5);
    enum { R = 3, C = 64 };
    float x[R * C], a[R * C], b[R * C];
    for (int i = 0; i < R * C; i++) x[i] = (float)flx_rng_normal(&rng);
    flx_qspec specs[3] = {flx_qspec_make(4, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0),
                          flx_qspec_make(8, FLX_QS_ASYM_ZP, FLX_QG_GROUP, 16),
                          flx_qspec_make(4, FLX_QS_SYM, FLX_QG_TENSOR, 0)};
    for (int k = 0; k < 3; k++) {
        flx_qparams p[R * C];
        flx_quant_params(&specs[k], x, R, C, p);
        flx_fake_quant(&specs[k], x, R, C, p, a);
        flx_fake_quant(&specs[k], x, R, C, NULL, b);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "spec %d", k);
        /* error bound: half a step (FlexLLM: s/2 = (max-min)/30) */
        for (int i = 0; i < R * C; i++) {
            const flx_qparams *pp = k == 2 ? &p[0] : k == 0 ? &p[i / C] : &p[i / 16];
            cr_assert(fabsf(a[i] - x[i]) <= pp->scale * 0.5f * 1.0001f + 1e-6f);
        }
        /* in place */
        memcpy(b, x, sizeof x);
        flx_fake_quant(&specs[k], b, R, C, NULL, b);
        cr_assert_eq(memcmp(a, b, sizeof a), 0);
    }
}

Test(quantizer, int16)
{
    /* 16-bit symmetric: s = 2/32767; x = 2 -> 32767; x = -2 -> -32767 */
    const float x[2] = {2.0f, -2.0f};
    flx_qspec s = flx_qspec_make(16, FLX_QS_SYM, FLX_QG_ROW, 0);
    flx_qparams p;
    int32_t q[2];
    quant_all(&s, x, 1, 2, &p, q);
    cr_assert_eq(q[0], 32767);
    cr_assert_eq(q[1], -32767);
    uint8_t packed[4];
    int32_t back[2];
    flx_pack_codes(16, q, 2, packed);
    cr_assert_eq(packed[0], 0xFF);
    cr_assert_eq(packed[1], 0x7F);
    flx_unpack_codes(16, 1, packed, 2, back);
    cr_assert_eq(back[1], -32767);
}

/* brute force of SpinQuant's search, written out separately */
static float brute_mse_scale(const float *x, int n)
{
    float amax = 0;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    double best = INFINITY;
    float best_s = 0;
    for (int i = 0; i < 80; i++) {
        float pr = (float)(1.0 - i / 100.0);
        float s = (pr * amax) / 7.0f;
        double e = 0;
        for (int k = 0; k < n; k++) {
            float r = roundf(x[k] / s);
            r = r < -8 ? -8 : r > 7 ? 7 : r;
            float a = fabsf(s * r - x[k]);
            if (a != 0.0f) e += (double)powf(a, 2.4f);
        }
        if (e < best) { best = e; best_s = s; }
    }
    return best_s;
}

Test(quantizer, mse_clip_search)
{
    /* one outlier among Gaussian values: the search must shrink the range */
    flx_rng rng;
    flx_rng_seed(&rng, 11);
    enum { N = 256 };
    float x[2 * N];
    for (int i = 0; i < 2 * N; i++) x[i] = (float)flx_rng_normal(&rng) * 0.1f;
    x[17] = 2.0f;
    flx_qspec s = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
    s.mse_clip = 1;
    flx_qparams p[2];
    flx_quant_params(&s, x, 2, N, p);
    cr_assert_eq(p[0].scale, brute_mse_scale(x, N));
    cr_assert_eq(p[1].scale, brute_mse_scale(x + N, N));
    cr_assert(p[0].scale < 2.0f / 7.0f);
    /* its error is no larger than plain RTN's */
    flx_qspec rtn = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
    float a[2 * N], b[2 * N];
    flx_fake_quant(&s, x, 2, N, p, a);
    flx_fake_quant(&rtn, x, 2, N, NULL, b);
    double ea = 0, eb = 0;
    for (int i = 0; i < N; i++) {
        ea += pow(fabs(a[i] - x[i]), 2.4);
        eb += pow(fabs(b[i] - x[i]), 2.4);
    }
    cr_assert(ea <= eb);
}

Test(quantizer, packing)
{
    /* int4 pairs: code 2i in the low nibble.
     * [1, -1] -> 0x1 | 0xF<<4 = 0xF1; [7, -8] -> 0x7 | 0x8<<4 = 0x87; [3] -> 0x03 */
    const int32_t q[5] = {1, -1, 7, -8, 3};
    uint8_t b[3];
    cr_assert_eq(flx_pack_bytes(4, 5), 3);
    flx_pack_codes(4, q, 5, b);
    cr_assert_eq(b[0], 0xF1);
    cr_assert_eq(b[1], 0x87);
    cr_assert_eq(b[2], 0x03);
    int32_t back[5];
    flx_unpack_codes(4, 1, b, 5, back);
    for (int i = 0; i < 5; i++) cr_assert_eq(back[i], q[i]);
    /* the same nibbles read unsigned: 1, 15, 7, 8, 3 */
    flx_unpack_codes(4, 0, b, 5, back);
    cr_assert_eq(back[1], 15);
    cr_assert_eq(back[3], 8);
    const int8_t q8[4] = {-8, 7, 0, -3};
    uint8_t b8[2];
    int8_t r8[4];
    flx_pack_int4(q8, 4, b8);
    cr_assert_eq(b8[0], 0x78);
    cr_assert_eq(b8[1], 0xD0);
    flx_unpack_int4(b8, 4, 1, r8);
    cr_assert_eq(memcmp(q8, r8, 4), 0);
    /* every byte value, signed and unsigned, odd length (the last high nibble
     * unused), against flx_unpack_codes */
    uint8_t all[256];
    int8_t u8[511];
    int32_t ref[511];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    for (int sgn = 0; sgn < 2; sgn++) {
        flx_unpack_int4(all, 511, sgn, u8);
        flx_unpack_codes(4, sgn, all, 511, ref);
        for (int i = 0; i < 511; i++) cr_assert_eq(u8[i], ref[i], "signed %d element %d", sgn, i);
    }
    cr_assert_eq(u8[1], 0);      /* byte 0x00 */
    cr_assert_eq(u8[2 * 0xF7], 7);    /* byte 0xF7: low 7, high -1 */
    cr_assert_eq(u8[2 * 0xF7 + 1], -1);

    /* random round trips at every width */
    flx_rng rng;
    flx_rng_seed(&rng, 2);
    for (int bits = 2; bits <= 16; bits++) {
        if (bits > 8 && bits != 16) continue;
        for (int sgn = 0; sgn <= 1; sgn++) {
            flx_qspec s = flx_qspec_make(bits, sgn ? FLX_QS_SYM : FLX_QS_ASYM_ZP, FLX_QG_ROW, 0);
            int32_t lo, hi;
            flx_qspec_range(&s, &lo, &hi);
            enum { N = 333 };
            int32_t in[N], out[N];
            uint8_t buf[2 * N];
            for (int i = 0; i < N; i++) in[i] = lo + (int32_t)(flx_rng_u64(&rng) % (uint64_t)(hi - lo + 1));
            flx_pack_codes(bits, in, N, buf);
            flx_unpack_codes(bits, sgn, buf, N, out);
            cr_assert_eq(memcmp(in, out, sizeof in), 0, "bits %d signed %d", bits, sgn);
        }
    }
}

Test(quantizer, flexllm_weight_export)
{
    /* row 0: max|w| = 1.75 -> s = 0.25; q = 7, -2, 1, -7, round(3.6) = 4;
     *        sum q = 3 -> wsum = 0.75
     * row 1: zeros -> s = 1, q = 0, wsum = 0 */
    const float w[10] = {1.75f, -0.5f, 0.25f, -1.75f, 0.9f, 0, 0, 0, 0, 0};
    int8_t q[10];
    float s[2], ws[2];
    flx_quant_flexllm_weight(w, 2, 5, q, s, ws);
    const int8_t want[5] = {7, -2, 1, -7, 4};
    cr_assert_eq(memcmp(q, want, 5), 0);
    cr_assert_eq(s[0], 0.25f);
    cr_assert_eq(ws[0], 0.75f);
    cr_assert_eq(s[1], 1.0f);
    cr_assert_eq(ws[1], 0.0f);
}

Test(quantizer, spec_errors)
{
    flx_error err;
    flx_qspec s = flx_qspec_make(1, FLX_QS_SYM, FLX_QG_ROW, 0);
    cr_assert_eq(flx_qspec_check(&s, 64, "layer 2 wq", &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "layer 2 wq") && strstr(err.msg, "1-bit"), "%s", err.msg);
    s.bits = 9;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_EINVAL);
    s.bits = 12;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_EINVAL);
    s.bits = 16;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_OK);
    s.bits = 4;
    s.gran = FLX_QG_GROUP;
    s.group_size = 10;
    cr_assert_eq(flx_qspec_check(&s, 64, "layer 0 w_down", &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "does not divide") && strstr(err.msg, "64"), "%s", err.msg);
    s.group_size = 0;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_EINVAL);
    s.group_size = 32;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_OK);
    s.clip = 0.0f;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_EINVAL);
    s.clip = NAN;
    cr_assert_eq(flx_qspec_check(&s, 64, "x", &err), FLX_EINVAL);
}
