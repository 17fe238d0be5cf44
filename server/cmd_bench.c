/* cmd_bench.c: placeholder until its issue lands; it must be replaced, not shipped. */
#include <stdio.h>
#include "commands.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "mkdseg %s: not built yet\n", argv[0]);
    return 2;
}
