/* perf_svg.c -- SVG pictures (filled in below). */
#include "flx_perf.h"
