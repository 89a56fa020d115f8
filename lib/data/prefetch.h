/*
 * Double buffering for batches: two host slots, and (when threaded) one
 * background thread that fills the slot of the next batch while the caller
 * consumes the other. A batch is a pure function of (epoch, batch) given
 * what `fill` reads, so it does not matter which thread fills it: batches
 * are identical with and without the thread. The caller must invalidate
 * before changing anything `fill` reads.
 */
#ifndef LIBDAT_DATA_PREFETCH_H
#define LIBDAT_DATA_PREFETCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_common.h"

/* Writes batch (epoch, batch) into x (and y unless NULL); *count = rows. */
typedef void (*dat_prefetch_fill_fn)(void *arg, int64_t epoch, int64_t batch, float *x,
                                     int32_t *y, int32_t *count);

typedef enum { DAT_SLOT_EMPTY, DAT_SLOT_PENDING, DAT_SLOT_READY } dat_slot_state;

typedef struct dat_prefetch_slot {
    int64_t epoch, batch;
    dat_slot_state state; /* PENDING: queued for or being filled by the thread */
    float *x;
    int32_t *y;           /* NULL when there are no labels */
    int32_t count;
} dat_prefetch_slot;

typedef struct dat_prefetch {
    dat_prefetch_slot slot[2];
    dat_prefetch_fill_fn fill;
    void *arg;
    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job;  /* slot the thread is asked to fill, -1 = none */
    int busy; /* the thread is filling a slot */
    int stop;
} dat_prefetch;

/* Allocates two slots of x_elems floats (and y_elems int32, if > 0) and
 * starts the thread when threaded. */
dat_status dat_prefetch_init(dat_prefetch *pf, size_t x_elems, size_t y_elems, int threaded,
                             dat_prefetch_fill_fn fill, void *arg);

/* Stops the thread and frees the slots; accepts a zeroed or failed init. */
void dat_prefetch_fini(dat_prefetch *pf);

/* The slot holding (epoch, batch): waits for the thread if it is on it,
 * fills it here if nobody is. The slot stays the caller's until the next
 * get / request / invalidate. */
dat_prefetch_slot *dat_prefetch_get(dat_prefetch *pf, int64_t epoch, int64_t batch);

/* Asks the thread to fill (epoch, batch) into the slot other than `keep`;
 * does nothing when not threaded. */
void dat_prefetch_request(dat_prefetch *pf, int64_t epoch, int64_t batch,
                          const dat_prefetch_slot *keep);

/* Cancels a queued request, waits for a running one and empties both slots. */
void dat_prefetch_invalidate(dat_prefetch *pf);

#endif
