/* commands.h: the subcommands of the single `mkdseg` binary.
 * Each command lives in server/cli/cmd_<name>.c and has the signature
 *     int cmd_<name>(int argc, char **argv);
 * argv[0] is the command name; the return value is the process exit status.
 * Every command prints its usage for `--help` and exits 0, and returns 2 on a usage error. */
#ifndef MKDSEG_COMMANDS_H
#define MKDSEG_COMMANDS_H

typedef int (*cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    cmd_fn fn;
    const char *summary;
} cmd_entry;

int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_phantom(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_segment(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_dice_check(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* The static command table (server/cli/main.c), NULL-terminated. */
extern const cmd_entry mkdseg_commands[];

#endif
