/* gptq_groups: the two rules for the parameters of a group that starts
 * inside a GPTQ block (opts.block_start_groups).  Block 128, groups of 32,
 * 4-bit symmetric: by the block-start rule every group of the first block
 * gets max|w|/7 of the ORIGINAL weights (nothing before it has updated the
 * block's copy in SpinQuant's code), the same as RTN; by the default rule
 * groups 1-3 see the in-block updates of the columns before them, so their
 * scales differ from RTN, while group 0 (nothing updated yet) agrees. */
#include "flx_gptq.h"
#include "test_util.h"

#include <math.h>

Test(gptq_groups, block_start_rule_against_hand_computed_scales)
{
    const int n_out = 6, n = 256, n_rows = 600, g = 32, ng = n / g;
    flx_rng r;
    flx_rng_seed(&r, 9);
    float *x = malloc(sizeof(float) * n_rows * n), *w = malloc(sizeof(float) * n_out * n);
    for (int t = 0; t < n_rows; t++)
        for (int i = 0; i < n; i++) x[t * n + i] = (float)(flx_rng_normal(&r) + (i ? 0.7 * x[t * n + i - 1] : 0));
    for (int i = 0; i < n_out * n; i++) w[i] = (float)flx_rng_normal(&r);
    flx_hessian h;
    cr_assert_eq(flx_hessian_init(&h, n, NULL), FLX_OK);
    cr_assert_eq(flx_hessian_add(&h, x, n_rows, NULL), FLX_OK);
    flx_wquant wq = flx_wquant_int4_channel();
    wq.group_size = g;
    flx_wq_out o[2], rtn;
    for (int k = 0; k < 2; k++) {
        o[k].q = malloc(sizeof(int32_t) * n_out * n);
        o[k].scale = malloc(sizeof(float) * n_out * ng);
        o[k].zero = malloc(sizeof(float) * n_out * ng);
        flx_gptq_opts go = flx_gptq_opts_default();
        go.block_start_groups = k;
        cr_assert_eq(flx_gptq(w, n_out, n, &h, &wq, &go, &o[k], NULL, NULL, NULL), FLX_OK);
    }
    rtn.q = malloc(sizeof(int32_t) * n_out * n);
    rtn.scale = malloc(sizeof(float) * n_out * ng);
    rtn.zero = malloc(sizeof(float) * n_out * ng);
    cr_assert_eq(flx_rtn(w, n_out, n, &wq, &rtn, NULL, NULL), FLX_OK);
    int differ_default = 0;
    for (int row = 0; row < n_out; row++)
        for (int gi = 0; gi < 4; gi++) {   /* the first block's groups */
            float amax = 0;
            for (int k = 0; k < g; k++) amax = fmaxf(amax, fabsf(w[row * n + gi * g + k]));
            const float s = amax / 7.0f;
            cr_assert_eq(rtn.scale[row * ng + gi], s);
            cr_assert_eq(o[1].scale[row * ng + gi], s, "block-start rule, row %d group %d", row, gi);
            if (gi == 0) cr_assert_eq(o[0].scale[row * ng + gi], s);
            else differ_default += o[0].scale[row * ng + gi] != s;
        }
    cr_assert_eq(differ_default, n_out * 3, "the default rule sees the in-block updates");
    /* codes stay in range */
    for (int row = 0; row < n_out; row++) {
        for (int i = 0; i < n; i++) cr_assert(o[1].q[row * n + i] >= -8 && o[1].q[row * n + i] <= 7);
    }
    for (int k = 0; k < 2; k++) { free(o[k].q); free(o[k].scale); free(o[k].zero); }
    free(rtn.q); free(rtn.scale); free(rtn.zero);
    flx_hessian_free(&h);
    free(x);
    free(w);
}
