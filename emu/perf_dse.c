/* perf_dse.c -- design-space exploration (filled in below). */
#include "flx_perf.h"
