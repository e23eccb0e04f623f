/* flxemu dse -- not built yet; its issue is open. */
#include "cli.h"

#include <stdio.h>

int flx_cmd_dse(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "flxemu dse: not implemented yet\n");
    return FLX_EXIT_FAIL;
}
