/* flxemu info -- not built yet; its issue is open. */
#include "cli.h"

#include <stdio.h>

int flx_cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "flxemu info: not implemented yet\n");
    return FLX_EXIT_FAIL;
}
