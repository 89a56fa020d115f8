/* The JSON result of dat-eval. */
#include <string.h>

#include "eval.h"

static const char *const aa_names[] = {"apgd-ce", "apgd-t", "fab-t", "square"};

static void int_array(FILE *f, const char *name, const int32_t *v, int64_t n)
{
    fprintf(f, ",\"%s\":[", name);
    for (int64_t i = 0; i < n; ++i)
        fprintf(f, "%s%d", i ? "," : "", (int)v[i]);
    fputc(']', f);
}

static double frac(int64_t k, int64_t n)
{
    return n ? (double)k / (double)n : 0.0;
}

static void write_aa(FILE *f, const evaluation *e)
{
    const eval_options *o = &e->o;
    fprintf(f, ",\"autoattack\":{\"ra\":%.6f,\"robust\":%lld,\"attacks\":[",
            frac(e->aa_count, e->total), (long long)e->aa_count);
    int first = 1;
    for (int a = 0; a < DAT_AA_COUNT; ++a)
        if (o->attacks & DAT_AA_BIT(a)) {
            fprintf(f, "%s\"%s\"", first ? "" : ",", aa_names[a]);
            first = 0;
        }
    fputs("],\"broken_by\":{", f);
    first = 1;
    for (int a = 0; a < DAT_AA_COUNT; ++a) {
        if (!(o->attacks & DAT_AA_BIT(a)))
            continue;
        int64_t k = 0;
        for (int64_t i = 0; i < e->total; ++i)
            k += e->aa_outcome[i] == a;
        fprintf(f, "%s\"%s\":%lld", first ? "" : ",", aa_names[a], (long long)k);
        first = 0;
    }
    fprintf(f,
            "},\"apgd_steps\":%d,\"targets\":%d,\"fab_steps\":%d,\"square_queries\":%d,"
            "\"seconds\":%.3f}",
            (int)o->apgd_steps, (int)eval_aa_targets(e), (int)o->fab_steps, (int)o->square_queries,
            e->seconds[2]);
}

static void write_certify(FILE *f, const evaluation *e)
{
    const eval_options *o = &e->o;
    double acc[MAX_RADII] = {0};
    if (e->total)
        dat_smooth_certified_accuracy(e->cert_pred, e->cert_radius, e->label, e->total, o->radii,
                                      o->num_radii, acc);
    int64_t abstain = 0;
    for (int64_t i = 0; i < e->total; ++i)
        abstain += e->cert_pred[i] == DAT_SMOOTH_ABSTAIN;
    fprintf(f,
            ",\"certify\":{\"sigma\":%g,\"n0\":%d,\"n\":%d,\"alpha\":%g,\"abstain\":%lld,"
            "\"radii\":[",
            (double)o->sigma, (int)o->n0, (int)o->n, (double)o->alpha, (long long)abstain);
    for (int j = 0; j < o->num_radii; ++j)
        fprintf(f, "%s%g", j ? "," : "", (double)o->radii[j]);
    fputs("],\"certified_accuracy\":[", f);
    for (int j = 0; j < o->num_radii; ++j)
        fprintf(f, "%s%.6f", j ? "," : "", acc[j]);
    fprintf(f, "],\"seconds\":%.3f}", e->seconds[3]);
}

static void write_per_sample(FILE *f, const evaluation *e)
{
    const eval_options *o = &e->o;
    fputs(",\"per_sample\":{\"index_base\":0", f);
    int_array(f, "label", e->label, e->total);
    if (o->ta)
        int_array(f, "clean_pred", e->clean_pred, e->total);
    if (o->pgd) {
        fputs(",\"pgd_robust\":[", f);
        for (int64_t i = 0; i < e->total; ++i)
            fprintf(f, "%s%d", i ? "," : "", e->pgd_robust[i]);
        fputc(']', f);
    }
    if (o->aa)
        int_array(f, "aa_outcome", e->aa_outcome, e->total);
    if (o->certify) {
        int_array(f, "cert_pred", e->cert_pred, e->total);
        fputs(",\"cert_radius\":[", f);
        for (int64_t i = 0; i < e->total; ++i)
            fprintf(f, "%s%.6g", i ? "," : "", (double)e->cert_radius[i]);
        fputc(']', f);
    }
    fputc('}', f);
}

/* The data and the arithmetic the figures hold for: a subset's accuracy is not the whole
 * test set's, and bf16 / tf32 change the last digits. */
static void write_setting(FILE *f, const evaluation *e)
{
    const eval_options *o = &e->o;
    fprintf(f, ",\"data_format\":\"%s\"", o->data_format);
    if (o->num_classes_subset) {
        fputs(",\"classes\":[", f);
        for (int i = 0; i < o->num_classes_subset; ++i)
            fprintf(f, "%s%d", i ? "," : "", (int)o->classes[i]);
        fputc(']', f);
    }
    fprintf(f, ",\"device\":\"%s\",\"precision\":\"%s\"", o->device, o->precision);
}

void write_json(FILE *f, const evaluation *e)
{
    const eval_options *o = &e->o;
    fprintf(f, "{\"model\":\"%s\",\"checkpoint\":\"", o->model);
    for (const char *c = o->checkpoint; *c; ++c) /* paths may hold quotes or backslashes */
        fprintf(f, (*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
    fprintf(f, "\",\"images\":%lld,\"norm\":\"%s\",\"eps\":%g,\"seed\":%llu", (long long)e->total,
            o->norm, (double)o->eps, (unsigned long long)o->seed);
    write_setting(f, e);
    if (o->ta)
        fprintf(f, ",\"ta\":%.6f", frac(e->clean, e->total));
    if (o->pgd)
        fprintf(f, ",\"pgd\":{\"steps\":%d,\"restarts\":%d,\"ra\":%.6f,\"seconds\":%.3f}",
                (int)o->pgd_steps, (int)o->pgd_restarts, frac(e->pgd_count, e->total),
                e->seconds[1]);
    if (o->aa)
        write_aa(f, e);
    if (o->certify)
        write_certify(f, e);
    if (o->per_sample)
        write_per_sample(f, e);
    fputs("}\n", f);
}
