/* replaced by the cycle-model sources */
typedef int flx_perf_placeholder_t;
