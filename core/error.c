/* Status codes and error messages, plus overflow-checked size arithmetic. */
#include "flx_core.h"

#include <stdarg.h>
#include <stdio.h>

int flx_fail(flx_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *flx_status_str(int code)
{
    switch (code) {
    case FLX_OK:           return "ok";
    case FLX_EIO:          return "I/O error";
    case FLX_EFORMAT:      return "format error";
    case FLX_ENOMEM:       return "out of memory";
    case FLX_EINVAL:       return "invalid argument";
    case FLX_EUNSUPPORTED: return "unsupported";
    case FLX_ENOTFOUND:    return "not found";
    case FLX_ENUMERIC:     return "numeric error";
    default:               return "unknown error";
    }
}

int flx_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int flx_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}
