#include "resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value at p in a flat JSON object (a number, a string or an array of
 * numbers, as train_options_json writes them): its length. */
static size_t value_len(const char *p)
{
    const char *e = NULL;
    if (*p == '"')
        e = strchr(p + 1, '"');
    else if (*p == '[')
        e = strchr(p, ']');
    return e ? (size_t)(e + 1 - p) : strcspn(p, ",}");
}

/* The value of key in the flat JSON object json, or NULL. */
static const char *find_value(const char *json, const char *key, size_t key_len)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%.*s\":", (int)key_len, key);
    const char *v = strstr(json, pat);
    return v ? v + strlen(pat) : NULL;
}

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
        size_t key_len = (size_t)(colon - key);
        const char *mine = colon + 2, *theirs = find_value(saved, key, key_len);
        size_t n = value_len(mine);
        int epochs = key_len == 6 && strncmp(key, "epochs", 6) == 0;
        if (theirs && !epochs && (value_len(theirs) != n || strncmp(theirs, mine, n) != 0)) {
            fprintf(stderr, "dat-train: resume: %s was written by a run with \"%.*s\":%.*s, this "
                            "run has %.*s; only --epochs may differ (the continuation is "
                            "bit-exact): pass that run's options, or start a new run without "
                            "--resume (--init-from CKPT starts from its weights)\n",
                    path, (int)key_len, key, (int)value_len(theirs), theirs, (int)n, mine);
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
    const char *best = strstr(saved, "\"best_val_ra\":");
    if (best)
        r->best_ra = strtod(best + strlen("\"best_val_ra\":"), NULL);
    return 0;
}
