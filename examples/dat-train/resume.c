#include "resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Compares this run's options (r->config) with those the checkpoint's run
 * recorded, key by key; a key the checkpoint lacks (written by an older
 * dat-train) is not compared. Returns 0, or 1 after naming the first
 * difference. */
static int same_options(const run *r, const char *path, const char *saved)
{
    const char *p = r->config + 1; /* past '{' */
    while (*p == '"') {
        const char *key = p + 1, *colon = strchr(key, '"');
        if (!colon)
            break;
        size_t key_len = (size_t)(colon - key), n = 0, theirs_len = 0;
        const char *mine = config_value(p, key, key_len, &n);
        const char *theirs = config_value(saved, key, key_len, &theirs_len);
        if (!mine)
            break;
        int epochs = key_len == 6 && strncmp(key, "epochs", 6) == 0;
        if (theirs && !epochs && (theirs_len != n || strncmp(theirs, mine, n) != 0)) {
            fprintf(stderr, "dat-train: resume: %s was written by a run with \"%.*s\":%.*s, this "
                            "run has %.*s; only --epochs may differ (the continuation is "
                            "bit-exact): pass that run's options, or start a new run without "
                            "--resume (--init-from CKPT starts from its weights)\n",
                    path, (int)key_len, key, (int)theirs_len, theirs, (int)n, mine);
            return 1;
        }
        p = mine + n;
        if (*p == ',')
            ++p;
    }
    return 0;
}

int resume(run *r)
{
    char path[4096], saved[8192];
    snprintf(path, sizeof path, "%s/last.safetensors", r->o.checkpoint_dir);
    dat_checkpoint_info info = {.size = sizeof info};
    dat_status s = dat_checkpoint_load(path, r->model, r->optim, &info, saved, sizeof saved);
    if (s != DAT_OK)
        return fail(r, "resume", s);
    if (same_options(r, path, saved))
        return 1;
    if (info.epoch < 0 || info.epoch > r->o.epochs) {
        fprintf(stderr, "dat-train: resume: %s is at epoch %lld, past --epochs %d: raise "
                        "--epochs to train on\n",
                path, (long long)info.epoch, (int)r->o.epochs);
        return 1;
    }
    if (r->attack)
        dat_attack_set_step(r->attack, info.attack_step);
    r->start_epoch = info.epoch;
    size_t len;
    const char *best = config_value(saved, "best_val_ra", strlen("best_val_ra"), &len);
    if (best)
        r->best_ra = strtod(best, NULL);
    return 0;
}
