/* quantizer.c -- symmetric, zero-point and float-offset integer quantizers,
 * their granularities, MSE clip search, packing, FlexLLM weight export.
 * Formulas are in flx_quant.h; this file follows them line by line. */
#include "flx_quant.h"
#include "qsimd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

flx_qspec flx_qspec_make(int32_t bits, flx_qscheme scheme, flx_qgran gran, int32_t group_size)
{
    flx_qspec s;
    memset(&s, 0, sizeof s);
    s.bits = bits;
    s.scheme = scheme;
    s.gran = gran;
    s.group_size = group_size;
    s.round = FLX_QR_HALF_AWAY;
    s.clip = 1.0f;
    s.mse_clip = 0;
    return s;
}

int flx_qspec_check(const flx_qspec *s, int64_t n_cols, const char *what, flx_error *err)
{
    if (!what) what = "tensor";
    if (!((s->bits >= 2 && s->bits <= 8) || s->bits == 16))
        return flx_fail(err, FLX_EINVAL, "%s: %d-bit quantization is not supported (use 2..8 or 16)",
                        what, (int)s->bits);
    if ((int)s->scheme < FLX_QS_SYM || (int)s->scheme > FLX_QS_ASYM_FLOAT)
        return flx_fail(err, FLX_EINVAL, "%s: unknown quantization scheme %d", what, (int)s->scheme);
    if ((int)s->round < FLX_QR_HALF_AWAY || (int)s->round > FLX_QR_HALF_EVEN)
        return flx_fail(err, FLX_EINVAL, "%s: unknown rounding mode %d", what, (int)s->round);
    if (!(s->clip > 0.0f && s->clip <= 1.0f))
        return flx_fail(err, FLX_EINVAL, "%s: clip ratio %g is outside (0, 1]", what, (double)s->clip);
    if (s->gran == FLX_QG_GROUP) {
        if (s->group_size < 1)
            return flx_fail(err, FLX_EINVAL, "%s: group size %d must be positive", what,
                            (int)s->group_size);
        if (n_cols % s->group_size != 0)
            return flx_fail(err, FLX_EINVAL, "%s: group size %d does not divide the %lld columns",
                            what, (int)s->group_size, (long long)n_cols);
    } else if ((int)s->gran < FLX_QG_TENSOR || (int)s->gran > FLX_QG_GROUP) {
        return flx_fail(err, FLX_EINVAL, "%s: unknown granularity %d", what, (int)s->gran);
    }
    return FLX_OK;
}

void flx_qspec_range(const flx_qspec *s, int32_t *qmin, int32_t *qmax)
{
    if (s->scheme == FLX_QS_SYM) {
        *qmin = -(1 << (s->bits - 1));
        *qmax = (1 << (s->bits - 1)) - 1;
    } else {
        *qmin = 0;
        *qmax = (1 << s->bits) - 1;
    }
}

static int64_t group_cols(const flx_qspec *s, int64_t cols)
{
    return s->gran == FLX_QG_GROUP ? s->group_size : cols;
}

int64_t flx_qspec_n_params(const flx_qspec *s, int64_t rows, int64_t cols)
{
    switch (s->gran) {
    case FLX_QG_TENSOR: return 1;
    case FLX_QG_ROW:    return rows;
    case FLX_QG_GROUP:  return rows * (cols / s->group_size);
    }
    return 0;
}

float flx_qround_apply(flx_qround r, float x)
{
    return r == FLX_QR_HALF_EVEN ? rintf(x) : roundf(x);   /* rintf: default mode is RNE */
}

/* clamp in float first so that the int conversion is always defined */
static int32_t clamp_code(float r, int32_t qmin, int32_t qmax)
{
    if (!(r >= (float)qmin)) return isnan(r) ? 0 : qmin;
    if (r > (float)qmax) return qmax;
    return (int32_t)r;
}

/* Parameters for the range [lo, hi] (clip already applied). */
static flx_qparams params_for_range(const flx_qspec *s, float lo, float hi)
{
    flx_qparams p = {1.0f, 0.0f};
    int32_t qmin, qmax;
    flx_qspec_range(s, &qmin, &qmax);
    switch (s->scheme) {
    case FLX_QS_SYM: {
        float amax = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
        p.scale = amax / (float)qmax;
        if (p.scale == 0.0f) p.scale = 1.0f;
        break;
    }
    case FLX_QS_ASYM_ZP: {
        if (!s->minmax_range || lo == hi) {
            if (lo > 0.0f) lo = 0.0f;
            if (hi < 0.0f) hi = 0.0f;
        }
        if (lo == 0.0f && hi == 0.0f) { lo = -1.0f; hi = 1.0f; }
        p.scale = (hi - lo) / (float)qmax;
        p.zero = flx_qround_apply(s->round, -lo / p.scale);
        break;
    }
    case FLX_QS_ASYM_FLOAT:
        p.scale = (hi - lo) / (float)qmax;
        if (p.scale == 0.0f) p.scale = 1.0f;
        p.zero = lo;
        break;
    }
    return p;
}

/* min and max as FlexLLM tracks them: sentinels +-1e32, strict compares */
static void min_max(const float *x, int64_t n, int64_t stride_rows, int64_t rows, int64_t cols,
                    float *lo, float *hi)
{
    float mn = 1e32f, mx = -1e32f;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * stride_rows;
        for (int64_t k = 0; k < cols; k++) {
            if (row[k] > mx) mx = row[k];
            if (row[k] < mn) mn = row[k];
        }
    }
    (void)n;
    if (mx < mn) { mn = 0.0f; mx = 0.0f; }     /* empty or all NaN */
    *lo = mn;
    *hi = mx;
}

flx_qparams flx_qparams_of(const flx_qspec *s, const float *x, int64_t n)
{
    float lo, hi;
    min_max(x, n, n, 1, n, &lo, &hi);
    return params_for_range(s, lo * s->clip, hi * s->clip);
}

int32_t flx_quantize1(const flx_qspec *s, flx_qparams p, float x)
{
    int32_t qmin, qmax;
    flx_qspec_range(s, &qmin, &qmax);
    switch (s->scheme) {
    case FLX_QS_SYM:
        return clamp_code(flx_qround_apply(s->round, x / p.scale), qmin, qmax);
    case FLX_QS_ASYM_ZP:
        return clamp_code(flx_qround_apply(s->round, x / p.scale) + p.zero, qmin, qmax);
    case FLX_QS_ASYM_FLOAT:
        return clamp_code(flx_qround_apply(s->round, (x - p.zero) / p.scale), qmin, qmax);
    }
    return 0;
}

float flx_dequantize1(const flx_qspec *s, flx_qparams p, int32_t q)
{
    switch (s->scheme) {
    case FLX_QS_SYM:        return p.scale * (float)q;
    case FLX_QS_ASYM_ZP:    return p.scale * ((float)q - p.zero);
    case FLX_QS_ASYM_FLOAT: return p.scale * (float)q + p.zero;
    }
    return 0.0f;
}

static void quant_run(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, int32_t *q);

/* sum |x^ - x|^2.4 of one group under parameters p (codes go through buf) */
static double group_err(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, int32_t *buf)
{
    quant_run(s, p, x, n, buf);
    double e = 0.0;
    for (int64_t k = 0; k < n; k++) {
        float xh;
        switch (s->scheme) {
        case FLX_QS_SYM:     xh = p.scale * (float)buf[k]; break;
        case FLX_QS_ASYM_ZP: xh = p.scale * ((float)buf[k] - p.zero); break;
        default:             xh = p.scale * (float)buf[k] + p.zero; break;
        }
        float a = fabsf(xh - x[k]);
        if (a != 0.0f) e += (double)powf(a, 2.4f);   /* float pow, as torch's x.pow_(2.4) */
    }
    return e;
}

/* SpinQuant's weight clip search over one group of n values: shrink the
 * range by p = 1 - i/100 for i < 80, keep the first p with the smallest
 * sum |x^ - x|^2.4 (strictly smaller wins, so ties keep the wider range).
 * Errors are summed in double in index order. */
static flx_qparams mse_search(const flx_qspec *s, const float *x, int64_t n, float lo, float hi,
                              int32_t *buf)
{
    const int grid = 100, n_steps = 80;     /* maxshrink 0.8 * grid */
    flx_qparams best_p = params_for_range(s, lo, hi);
    double best = INFINITY;
    for (int i = 0; i < n_steps; i++) {
        float p = (float)(1.0 - (double)i / grid);
        flx_qparams cand = params_for_range(s, p * lo, p * hi);
        double e = group_err(s, cand, x, n, buf);
        if (e < best) {
            best = e;
            best_p = cand;
        }
    }
    return best_p;
}

void flx_quant_params(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                      flx_qparams *params)
{
    if (s->gran == FLX_QG_TENSOR) {
        float lo, hi;
        min_max(x, rows * cols, cols, rows, cols, &lo, &hi);
        params[0] = params_for_range(s, lo * s->clip, hi * s->clip);
        return;
    }
    int64_t g = group_cols(s, cols), n_groups = cols / g;
    int32_t stack_buf[1024], *buf = stack_buf, *heap = NULL;
    if (s->mse_clip && g > 1024) buf = heap = malloc((size_t)g * sizeof *buf);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n_groups; j++) {
            const float *xs = x + r * cols + j * g;
            float lo, hi;
            min_max(xs, g, g, 1, g, &lo, &hi);
            lo *= s->clip;
            hi *= s->clip;
            /* without scratch memory the search is skipped (plain range) */
            params[r * n_groups + j] = s->mse_clip && buf ? mse_search(s, xs, g, lo, hi, buf)
                                                          : params_for_range(s, lo, hi);
        }
    }
    free(heap);
}

static const flx_qparams *param_at(const flx_qspec *s, const flx_qparams *params, int64_t cols,
                                   int64_t r, int64_t k)
{
    switch (s->gran) {
    case FLX_QG_TENSOR: return params;
    case FLX_QG_ROW:    return params + r;
    case FLX_QG_GROUP:  return params + r * (cols / s->group_size) + k / s->group_size;
    }
    return params;
}

/* Codes of n values sharing one parameter set; the per-scheme loops spell
 * out flx_quantize1 so the hot path has no per-element dispatch. */
static void quant_run(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, int32_t *q)
{
    int32_t qmin, qmax;
    flx_qspec_range(s, &qmin, &qmax);
    const flx_qround rd = s->round;
    switch (s->scheme) {
    case FLX_QS_SYM:
        for (int64_t k = 0; k < n; k++) q[k] = clamp_code(flx_qround_apply(rd, x[k] / p.scale), qmin, qmax);
        break;
    case FLX_QS_ASYM_ZP:
        for (int64_t k = 0; k < n; k++)
            q[k] = clamp_code(flx_qround_apply(rd, x[k] / p.scale) + p.zero, qmin, qmax);
        break;
    case FLX_QS_ASYM_FLOAT:
        for (int64_t k = 0; k < n; k++)
            q[k] = clamp_code(flx_qround_apply(rd, (x[k] - p.zero) / p.scale), qmin, qmax);
        break;
    }
}

void flx_quant_apply(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                     const flx_qparams *params, int32_t *q)
{
    if (s->gran == FLX_QG_TENSOR) {
        quant_run(s, params[0], x, rows * cols, q);
        return;
    }
    int64_t g = group_cols(s, cols), n_groups = cols / g;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n_groups; j++)
            quant_run(s, params[r * n_groups + j], x + r * cols + j * g, g, q + r * cols + j * g);
}

/* The AVX2 form of flx_fake_quant_scalar (same bits, qsimd.c): the same
 * parameters per group (min/max, params_for_range), then the vector
 * quantize-dequantize over each run of values sharing them. */
static void fake_quant_avx2(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                            const flx_qparams *params, float *out)
{
    const int64_t g = s->gran == FLX_QG_TENSOR ? rows * cols : group_cols(s, cols);
    const int64_t n_runs = rows * cols / g;
    for (int64_t i = 0; i < n_runs; i++) {
        flx_qparams p;
        if (params) {
            p = params[s->gran == FLX_QG_TENSOR ? 0 : i];   /* ROW: i = row; GROUP: row-major groups */
        } else {
            float lo, hi;
            flx_qsimd_min_max(x + i * g, g, &lo, &hi);
            p = params_for_range(s, lo * s->clip, hi * s->clip);
        }
        flx_qsimd_fq_run(s, p, x + i * g, g, out + i * g);
    }
}

void flx_fake_quant(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                    const flx_qparams *params, float *out)
{
    /* the MSE clip search stays scalar (calibration, not the forward) */
    const int whole_groups = s->gran != FLX_QG_GROUP || (s->group_size > 0 && cols % s->group_size == 0);
    if (rows > 0 && cols > 0 && whole_groups && !(s->mse_clip && !params) && flx_qsimd_avx2())
        fake_quant_avx2(s, x, rows, cols, params, out);
    else
        flx_fake_quant_scalar(s, x, rows, cols, params, out);
}

void flx_fake_quant_u8(float *p, int64_t n, float a_s)
{
    if (flx_qsimd_avx2()) {
        flx_qsimd_u8(p, n, a_s);
        return;
    }
    flx_fake_quant_u8_scalar(p, n, a_s);
}

void flx_fake_quant_u8_scalar(float *p, int64_t n, float a_s)
{
    for (int64_t i = 0; i < n; i++) {
        float r = roundf(p[i] / a_s);
        p[i] = (r < 255.0f ? r : 255.0f) * a_s;
    }
}

void flx_fake_quant_scalar(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                           const flx_qparams *params, float *out)
{
    if (!params) {
        /* dynamic: one group at a time, so no scratch beyond the params */
        if (s->gran == FLX_QG_TENSOR) {
            flx_qparams p;
            flx_quant_params(s, x, rows, cols, &p);
            flx_fake_quant_scalar(s, x, rows, cols, &p, out);
            return;
        }
        int64_t g = group_cols(s, cols), n_groups = cols / g;
        flx_qspec one = *s;
        one.gran = FLX_QG_TENSOR;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n_groups; j++) {
                const float *xs = x + r * cols + j * g;
                flx_qparams p;
                flx_quant_params(s, xs, 1, g, &p);   /* ROW over one group */
                float *os = out + r * cols + j * g;
                for (int64_t k = 0; k < g; k++)
                    os[k] = flx_dequantize1(&one, p, flx_quantize1(&one, p, xs[k]));
            }
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) {
            const flx_qparams *p = param_at(s, params, cols, r, k);
            float v = x[r * cols + k];
            out[r * cols + k] = flx_dequantize1(s, *p, flx_quantize1(s, *p, v));
        }
}

/* ---------------------------------------------------------------- packing */

size_t flx_pack_bytes(int32_t bits, size_t n)
{
    if (bits <= 4) return (n + 1) / 2;
    if (bits <= 8) return n;
    return 2 * n;
}

void flx_pack_codes(int32_t bits, const int32_t *q, size_t n, uint8_t *out)
{
    if (bits <= 4) {
        for (size_t i = 0; i < n; i += 2) {
            uint8_t lo = (uint8_t)(q[i] & 0xF);
            uint8_t hi = i + 1 < n ? (uint8_t)(q[i + 1] & 0xF) : 0;
            out[i / 2] = (uint8_t)(lo | (hi << 4));
        }
    } else if (bits <= 8) {
        for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(q[i] & 0xFF);
    } else {
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = (uint8_t)(q[i] & 0xFF);
            out[2 * i + 1] = (uint8_t)((q[i] >> 8) & 0xFF);
        }
    }
}

static int32_t sext(uint32_t v, int bits)
{
    uint32_t m = 1u << (bits - 1);
    return (int32_t)((v ^ m) - m);
}

void flx_unpack_codes(int32_t bits, int is_signed, const uint8_t *in, size_t n, int32_t *q)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        int fw;
        if (bits <= 4) { v = (in[i / 2] >> (4 * (i & 1))) & 0xFu; fw = 4; }
        else if (bits <= 8) { v = in[i]; fw = 8; }
        else { v = (uint32_t)in[2 * i] | ((uint32_t)in[2 * i + 1] << 8); fw = 16; }
        q[i] = is_signed ? sext(v, fw) : (int32_t)v;
    }
}

void flx_pack_int4(const int8_t *q, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i += 2) {
        uint8_t lo = (uint8_t)(q[i] & 0xF);
        uint8_t hi = i + 1 < n ? (uint8_t)(q[i + 1] & 0xF) : 0;
        out[i / 2] = (uint8_t)(lo | (hi << 4));
    }
}

void flx_unpack_int4(const uint8_t *in, size_t n, int is_signed, int8_t *q)
{
    /* byte by byte (low nibble = even element), in loops the compiler
     * vectorizes: the loader unpacks a 1B model's 1.2 G codes this way */
    size_t pairs = n / 2;
    if (is_signed)
        for (size_t j = 0; j < pairs; j++) {
            q[2 * j] = (int8_t)((int8_t)(uint8_t)(in[j] << 4) >> 4);
            q[2 * j + 1] = (int8_t)((int8_t)in[j] >> 4);
        }
    else
        for (size_t j = 0; j < pairs; j++) {
            q[2 * j] = (int8_t)(in[j] & 0xFu);
            q[2 * j + 1] = (int8_t)(in[j] >> 4);
        }
    if (n & 1) {
        uint32_t v = in[pairs] & 0xFu;
        q[n - 1] = (int8_t)(is_signed ? sext(v, 4) : (int32_t)v);
    }
}

/* ---------------------------------------------------------------- FlexLLM weights */

void flx_quant_flexllm_weight(const float *w, int64_t n_out, int64_t n_in, int8_t *q,
                              float *scale, float *wsum)
{
    for (int64_t r = 0; r < n_out; r++) {
        const float *row = w + r * n_in;
        float amax = 0.0f;
        for (int64_t k = 0; k < n_in; k++)
            if (fabsf(row[k]) > amax) amax = fabsf(row[k]);
        float s = amax / 7.0f;
        if (s == 0.0f) s = 1.0f;
        int64_t sum = 0;
        for (int64_t k = 0; k < n_in; k++) {
            int32_t v = clamp_code(roundf(row[k] / s), -8, 7);
            q[r * n_in + k] = (int8_t)v;
            sum += v;
        }
        scale[r] = s;
        wsum[r] = s * (float)sum;     /* |sum| <= 8 * n_in: exact in float */
    }
}
