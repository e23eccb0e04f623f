/* Mean and standard error of per-item values from their running sums: used by
 * the perplexity runs (ppl.c) and the KL comparison (kld.c), so it lives in
 * neither and the two files do not depend on each other. */
#include <math.h>

#include "flx_ppl.h"

flx_mean_unc flx_mean_and_uncertainty(double sum, double sum2, int64_t count)
{
    flx_mean_unc r = {0.0, 0.0};
    if (count < 1) return r;
    r.mean = sum / (double)count;
    double var = sum2 / (double)count - r.mean * r.mean;
    r.unc = var > 0 && count > 10 ? sqrt(var / (double)(count - 1)) : 0.0;
    return r;
}
