/* The statistics of certification: the regularized incomplete beta function,
 * its inverse, the normal quantile and the Clopper-Pearson bound. */
#include <math.h>

#include "../core/error.h"
#include "eval.h"

/* Continued fraction of I_x(a, b) (modified Lentz), valid for x < (a+1)/(a+b+2),
 * where it converges in O(sqrt(max(a, b))) terms. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-16;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m < 100000; ++m) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        d = 1.0 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        d = 1.0 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < eps)
            break;
    }
    return h;
}

double dat_incbeta(double a, double b, double x)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    /* x^a (1-x)^b / (a B(a, b)) in logs, so large a and b do not overflow. */
    double log_front = a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    if (x < (a + 1.0) / (a + b + 2.0))
        return exp(log_front) * beta_cf(a, b, x) / a;
    return 1.0 - exp(log_front) * beta_cf(b, a, 1.0 - x) / b;
}

/* Bisection: I_x is increasing in x, so halving [0, 1] until the interval
 * stops shrinking gives the quantile to the last bit without any derivative. */
double dat_incbeta_inv(double a, double b, double p)
{
    if (p <= 0.0)
        return 0.0;
    if (p >= 1.0)
        return 1.0;
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 1100; ++i) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi)
            break;
        if (dat_incbeta(a, b, mid) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Upper tail Q(x) = P(Z > x), accurate in relative terms far in the tail. */
static double normal_upper(double x)
{
    return 0.5 * erfc(x / M_SQRT2);
}

/* Phi^-1: Abramowitz & Stegun 26.2.23 (error < 4.5e-4) as the start, then
 * Newton steps on the smaller tail, Q(x) = q, to full double precision. */
/* Phi^-1 near the median, where the tail q ~ 1/2 holds x only to an absolute
 * ~1e-16: Newton on Phi(x) - 1/2 = erf(x / sqrt 2) / 2 = d instead, with
 * d = p - 1/2 exact (Sterbenz) and erf relatively accurate at small x. */
static double central_quantile(double p)
{
    double d = p - 0.5, x = d * sqrt(2.0 * M_PI);
    for (int i = 0; i < 60; ++i) {
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        double dx = (0.5 * erf(x * M_SQRT1_2) - d) / pdf;
        x -= dx;
        if (fabs(dx) <= 1e-16 * fabs(x))
            break;
    }
    return x;
}

double dat_normal_quantile(double p)
{
    if (p <= 0.0)
        return -INFINITY;
    if (p >= 1.0)
        return INFINITY;
    if (p == 0.5)
        return 0.0;
    if (p > 0.25 && p < 0.75)
        return central_quantile(p);
    double q = p < 0.5 ? p : 1.0 - p;
    double t = sqrt(-2.0 * log(q));
    double x = t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                       (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
    for (int i = 0; i < 60; ++i) {
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        double dx = (normal_upper(x) - q) / pdf;
        x += dx;
        if (fabs(dx) <= 1e-16 * fabs(x))
            break;
    }
    return p < 0.5 ? -x : x;
}

double dat_clopper_pearson_lower(int64_t k, int64_t n, double alpha)
{
    if (k <= 0)
        return 0.0;
    return dat_incbeta_inv((double)k, (double)(n - k + 1), alpha);
}

/* ---- public entry points: argument checks around the functions above ---- */

static int finite_pos(double v)
{
    return isfinite(v) && v > 0;
}

dat_status dat_stat_incbeta(double a, double b, double x, double *out)
{
    DAT_CHECK_NOT_NULL(out);
    if (!finite_pos(a) || !finite_pos(b) || !(x >= 0.0 && x <= 1.0))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "need a > 0, b > 0, 0 <= x <= 1; got a = %g, b = %g, x = %g", a, b, x);
    *out = dat_incbeta(a, b, x);
    return DAT_OK;
}

dat_status dat_stat_incbeta_inv(double a, double b, double p, double *out)
{
    DAT_CHECK_NOT_NULL(out);
    if (!finite_pos(a) || !finite_pos(b) || !(p >= 0.0 && p <= 1.0))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "need a > 0, b > 0, 0 <= p <= 1; got a = %g, b = %g, p = %g", a, b, p);
    *out = dat_incbeta_inv(a, b, p);
    return DAT_OK;
}

dat_status dat_stat_normal_quantile(double p, double *out)
{
    DAT_CHECK_NOT_NULL(out);
    if (!(p >= 0.0 && p <= 1.0))
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "p = %g must be in [0, 1]", p);
    *out = dat_normal_quantile(p);
    return DAT_OK;
}

dat_status dat_stat_clopper_pearson_lower(int64_t successes, int64_t trials, double alpha,
                                          double *out)
{
    DAT_CHECK_NOT_NULL(out);
    if (trials < 1 || successes < 0 || successes > trials)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "need 0 <= successes <= trials and trials >= 1; got %lld of %lld",
                         (long long)successes, (long long)trials);
    if (!(alpha > 0.0 && alpha < 1.0))
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "alpha = %g must be in (0, 1)", alpha);
    *out = dat_clopper_pearson_lower(successes, trials, alpha);
    return DAT_OK;
}
