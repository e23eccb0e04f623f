/* flxemu quantize -- not built yet; its issue is open. */
#include "cli.h"

#include <stdio.h>

int flx_cmd_quantize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "flxemu quantize: not implemented yet\n");
    return FLX_EXIT_FAIL;
}
