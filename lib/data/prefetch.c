#include "prefetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"

static void *worker(void *arg)
{
    dat_prefetch *pf = arg;
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->stop && pf->job < 0)
            pthread_cond_wait(&pf->cv, &pf->mu);
        if (pf->stop)
            break;
        dat_prefetch_slot *s = &pf->slot[pf->job];
        pf->job = -1;
        pf->busy = 1;
        pthread_mutex_unlock(&pf->mu);
        int32_t count = 0;
        pf->fill(pf->arg, s->epoch, s->batch, s->x, s->y, &count);
        pthread_mutex_lock(&pf->mu);
        s->count = count;
        s->state = DAT_SLOT_READY;
        pf->busy = 0;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

dat_status dat_prefetch_init(dat_prefetch *pf, size_t x_elems, size_t y_elems, int threaded,
                             dat_prefetch_fill_fn fill, void *arg)
{
    memset(pf, 0, sizeof *pf);
    pf->fill = fill;
    pf->arg = arg;
    pf->job = -1;
    for (int k = 0; k < 2; ++k) {
        pf->slot[k].x = malloc(x_elems * sizeof(float));
        pf->slot[k].y = y_elems ? malloc(y_elems * sizeof(int32_t)) : NULL;
        if (pf->slot[k].x == NULL || (y_elems && pf->slot[k].y == NULL)) {
            dat_prefetch_fini(pf);
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "prefetch", "two batch buffers of %zu floats",
                             x_elems);
        }
    }
    if (!threaded)
        return DAT_OK;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    int err = pthread_create(&pf->thread, NULL, worker, pf);
    if (err != 0) {
        pthread_cond_destroy(&pf->cv);
        pthread_mutex_destroy(&pf->mu);
        dat_prefetch_fini(pf);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "prefetch", "cannot start the prefetch thread: "
                         "%s (set prefetch = 0)", strerror(err));
    }
    pf->threaded = 1;
    return DAT_OK;
}

void dat_prefetch_fini(dat_prefetch *pf)
{
    if (pf->threaded) {
        pthread_mutex_lock(&pf->mu);
        pf->stop = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->thread, NULL);
        pthread_cond_destroy(&pf->cv);
        pthread_mutex_destroy(&pf->mu);
        pf->threaded = 0;
    }
    for (int k = 0; k < 2; ++k) {
        free(pf->slot[k].x);
        free(pf->slot[k].y);
        pf->slot[k].x = NULL;
        pf->slot[k].y = NULL;
    }
}

static void fill_here(dat_prefetch *pf, dat_prefetch_slot *s, int64_t epoch, int64_t batch)
{
    s->epoch = epoch;
    s->batch = batch;
    pf->fill(pf->arg, epoch, batch, s->x, s->y, &s->count);
    s->state = DAT_SLOT_READY;
}

dat_prefetch_slot *dat_prefetch_get(dat_prefetch *pf, int64_t epoch, int64_t batch)
{
    if (!pf->threaded) {
        fill_here(pf, &pf->slot[0], epoch, batch);
        return &pf->slot[0];
    }
    pthread_mutex_lock(&pf->mu);
    for (int k = 0; k < 2; ++k) {
        dat_prefetch_slot *s = &pf->slot[k];
        if (s->state != DAT_SLOT_EMPTY && s->epoch == epoch && s->batch == batch) {
            while (s->state == DAT_SLOT_PENDING)
                pthread_cond_wait(&pf->cv, &pf->mu);
            pthread_mutex_unlock(&pf->mu);
            return s;
        }
    }
    /* Not asked for: fill it here, in a slot the thread is not writing. */
    dat_prefetch_slot *s = pf->slot[0].state == DAT_SLOT_PENDING ? &pf->slot[1] : &pf->slot[0];
    s->state = DAT_SLOT_EMPTY;
    pthread_mutex_unlock(&pf->mu);
    fill_here(pf, s, epoch, batch);
    return s;
}

void dat_prefetch_request(dat_prefetch *pf, int64_t epoch, int64_t batch,
                          const dat_prefetch_slot *keep)
{
    if (!pf->threaded)
        return;
    dat_prefetch_slot *s = keep == &pf->slot[0] ? &pf->slot[1] : &pf->slot[0];
    pthread_mutex_lock(&pf->mu);
    while (s->state == DAT_SLOT_PENDING)
        pthread_cond_wait(&pf->cv, &pf->mu);
    s->epoch = epoch;
    s->batch = batch;
    s->state = DAT_SLOT_PENDING;
    pf->job = (int)(s - pf->slot);
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

void dat_prefetch_invalidate(dat_prefetch *pf)
{
    if (!pf->threaded) {
        pf->slot[0].state = pf->slot[1].state = DAT_SLOT_EMPTY;
        return;
    }
    pthread_mutex_lock(&pf->mu);
    if (pf->job >= 0) { /* queued, not started: cancel it */
        pf->slot[pf->job].state = DAT_SLOT_EMPTY;
        pf->job = -1;
    }
    while (pf->busy)
        pthread_cond_wait(&pf->cv, &pf->mu);
    pf->slot[0].state = pf->slot[1].state = DAT_SLOT_EMPTY;
    pthread_mutex_unlock(&pf->mu);
}
