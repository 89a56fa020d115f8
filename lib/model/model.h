/* The model as libdat sees it inside: a list of nodes in topological order
 * over flat parameter, gradient and buffer storage. */
#ifndef LIBDAT_MODEL_MODEL_H
#define LIBDAT_MODEL_MODEL_H

#include "../core/tensor.h"
#include "libdat/dat_model.h"

/* Node 0 is the input; it is not a layer. */
#define DAT_NODE_INPUT ((dat_layer_kind)-1)

typedef struct dat_node {
    dat_layer_kind kind;
    char *name;            /* state_dict prefix; NULL for layers without parameters */
    int32_t in[2];         /* input node ids; -1 where unused */
    int32_t c, h, w;       /* output shape of one sample (linear: c = features, h = w = 1) */
    dat_layer_spec spec;   /* as given (name pointer not kept) */
    int32_t in_features;   /* linear: c * h * w of the input */
    int64_t w_off, b_off;  /* parameter offsets (weight / gamma, bias / beta); -1 if none */
    int64_t buf_off;       /* BN: running_mean at buf_off, running_var at buf_off + c */
    int32_t bn_index;      /* BN: index into num_batches_tracked */
    int fused_relu;        /* conv, BN or add: node + 1 is a ReLU that only it feeds,
                              computed inside it (conv and BN: backends with
                              fuses_conv_relu / fuses_bn_relu); its y is that ReLU's output */
    int takes_add;         /* BN: its input is the add at node - 1, whose sum it computes
                              in eval mode (dat_bn_desc's x2), the add skipped */
    int takes_bn;          /* add: node - 1 is a BN that only it reads, which it computes
                              (dat_bn_desc's residual), the BN's output never written */
    dat_act_fmt fmt;       /* of y and dy (graph.c's plan_formats) */
    int32_t grad_root;     /* the node whose dy buffer holds this node's gradient: itself,
                              or the root of the adds' tree it shares (grad_share.c) */
    int64_t shadow_off;    /* conv not float32 NCHW: byte offset of its weight's converted
                              copy in the model's wshadow */
    /* Run-time buffers in device memory, for `capacity` samples. */
    float *y;              /* output */
    float *dy;             /* gradient of the output */
    float *save_mean, *save_invstd; /* BN (c each) */
    int32_t *idx;          /* max pooling: argmax per output element */
    float *x_f32;          /* linear reading another format: its input, then the input's
                              gradient, in float32 (capacity x in_features each) */
} dat_node;

typedef struct dat_seg_entry {
    char *name;
    int64_t offset, length;
    dat_segment_kind kind;
    int32_t ndim;          /* the PyTorch shape, for checkpoints */
    int64_t shape[4];
} dat_seg_entry;

#define DAT_MODEL_KINDS_RUN 8 /* kinds of pass undo.c remembers */

struct dat_model {
    dat_ctx *ctx;
    int32_t in_c, in_h, in_w, classes;
    dat_node *nodes;
    int32_t n_nodes, output;
    float *norm_scale, *norm_shift;   /* device, in_c each; NULL without normalization */
    float *norm_mean, *norm_std;      /* host, what they came from (checkpoints record it) */
    dat_tensor *params, *grads, *buffers;
    dat_seg_entry *segs;
    int32_t n_segs;
    int64_t *num_batches_tracked;     /* host, one per BN layer */
    int32_t n_bn;
    dat_model_mode mode;
    int32_t last_batch;               /* samples of the last forward pass; 0 before any */

    /* Run-time scratch, sized for `capacity` samples (grown, never per step). */
    int32_t capacity;
    uint64_t runtime_gen;             /* new with every reallocation, unique in the process */
    float *scratch;                   /* largest activation: gradient contributions to add */
    float *z_clean, *dz, *dz_clean;   /* logits-sized */
    float *sample_loss;               /* [capacity] */
    float *ones;                      /* [capacity] of 1: sums sample_loss on the device */
    float *x_norm;                    /* the input normalized and / or in node 0's format */
    float *bn_saved;                  /* the BN running statistics before a recorded
                                         forward pass, then a uint32 flag (graph.c's
                                         keep_finite_stats); NULL without BN or graphs */
    void *wshadow;                    /* convolution weights in their layers' format, each at
                                         its node's shadow_off (NULL: all float32 NCHW) */
    int weights_pinned;               /* dat_graph_pin_weights: the parameters cannot change */
    int wshadow_fresh;                /* wshadow converted since the pin */
    float *host_loss;                 /* host copy of sample_loss */
    float *host_weights;              /* host copy of per-sample weights */
    int32_t *host_labels;             /* host copy of labels, for range checks */
    unsigned char *grad_ready;        /* per node: dy holds a contribution already */

    /* A dat_grad_sync's hook (lib/comm/grad_sync.c): while it is armed, the
     * loss backward's last pass calls grad_hook(user, lo) after each layer
     * with parameters, lo being the lowest offset from which the gradient is
     * final (parameters are laid out in node order, init.c). */
    void (*grad_hook)(void *user, size_t lo); /* NULL where it does not overlap */
    void *grad_hook_user;             /* the synchronizer attached, or NULL */
    int grad_hook_armed;              /* between its begin and end */
    int grad_hook_pass;               /* the loss backward's last pass is running */

    uint64_t kinds_run[DAT_MODEL_KINDS_RUN]; /* undo.c: kinds of pass run (+ 1; 0: none) */
    int next_kind_run;                /* where the next one goes, round robin */
};

/* Number of floats of one sample's output of node i. */
static inline int64_t dat_node_numel(const dat_node *n)
{
    return (int64_t)n->c * n->h * n->w;
}

/* Parameter counts of a node: weight (or gamma) and bias (or beta); 0 where
 * it has none (init.c). */
void dat_node_param_sizes(const dat_model *m, const dat_node *n, int64_t *wlen, int64_t *blen);

/* Grows the run-time buffers to hold batches of n samples. */
dat_status dat_model_reserve(dat_model *m, int32_t n);

/* Forward pass of n samples (device memory x, the model's input shape).
 * update_running: in train mode, whether BN running statistics are updated
 * (0 when recomputing activations of a batch already seen). */
dat_status dat_graph_forward(dat_model *m, const float *x, int32_t n, int update_running);

/* Books `count` training-mode forward passes (negative: takes them back) in
 * the batch norms' host counters, for forwards replayed from a graph, which
 * run no host code. */
void dat_graph_count_forwards(dat_model *m, int32_t count);

/* Backward pass from dz (the gradient of the logits) through the activations
 * of the last forward. param_beta < 0: no parameter gradients; else they are
 * written as grads = param_beta * grads + new. dx (may be NULL) receives the
 * gradient of the model's input in pixel space. */
dat_status dat_graph_backward(dat_model *m, const float *dz, int32_t n, float param_beta,
                              float *dx);

/* dat_graph_backward with parameter gradients, as the last pass of a loss:
 * an armed gradient hook sees it. */
dat_status dat_graph_backward_last(dat_model *m, const float *dz, int32_t n, float param_beta);

/* Logits of the last forward: n x classes, device memory. */
static inline float *dat_model_logits(dat_model *m)
{
    return m->nodes[m->output].y;
}

/* undo.c: a pass that fails part-way leaves the model's state as it found it.
 * The first run of each kind of pass (dat_model_pass_kind: the entry point, the
 * batch, the mode and the entry's own flags) saves the BN running statistics and
 * counters (in train mode) and, with `grads`, the gradient buffer; end() puts
 * them back if s is not DAT_OK, and returns s. Later runs of a kind that has
 * run save nothing: the backends' workspace, which grows inside the ops, then
 * holds what the pass needs. Nothing is saved while the context records. */
typedef struct dat_model_undo {
    uint64_t kind;
    int armed;                        /* the state below was saved */
    float *buffers, *grads;           /* device copies, NULL where not saved */
    int64_t *tracked;                 /* the BN counters */
} dat_model_undo;

enum { DAT_PASS_FORWARD = 1, DAT_PASS_LOSS, DAT_PASS_INPUT_GRAD, DAT_PASS_ATTACK,
       DAT_PASS_ROBUST };
uint64_t dat_model_pass_kind(int entry, int32_t n, uint64_t flags, const dat_model *m);
dat_status dat_model_undo_begin(dat_model *m, uint64_t kind, int grads, dat_model_undo *u);
dat_status dat_model_undo_end(dat_model *m, dat_model_undo *u, dat_status s);

/* Forward pass and per-sample objective (left in m->sample_loss, the logits in
 * the output node); with dx, also the input gradient (scaled by `scale`).
 * No parameter gradient is touched. Arguments are trusted: callers check. */
dat_status dat_model_objective(dat_model *m, const float *x, int32_t n, const int32_t *y,
                               const float *target, dat_objective objective, float scale,
                               float *dx);

/* Argument checks shared with the attacks; each fails with a message naming func.
 * check_input: x is float32 [N, C, H, W] of the model, finite; *n = N.
 * check_labels: y is int32 [n] with values in [0, classes) (read into host_labels:
 *   call dat_model_reserve(m, n) first).
 * check_matrix: t is float32 [n, k] (k = 0: [n]). */
dat_status dat_model_check_input(const char *func, const dat_model *m, const char *what,
                                 const dat_tensor *x, int32_t *n);
dat_status dat_model_check_labels(const char *func, dat_model *m, const dat_tensor *y,
                                  int32_t n);
dat_status dat_model_check_matrix(const char *func, const dat_model *m, const char *what,
                                  const dat_tensor *t, int32_t n, int32_t k);

/* Writes the state_dict to a safetensors file; `extra` (may be NULL) adds
 * further tensors and metadata before the file is written (checkpoints). */
struct dat_st_writer;
typedef void (*dat_model_extra_fn)(struct dat_st_writer *w, void *user);
dat_status dat_model_write(dat_model *model, const char *path, dat_model_extra_fn extra,
                           void *user);

/* Marks the convolutions and batch norms whose ReLU can be fused into them,
 * and gives every node its activation format (graph.c). */
void dat_graph_plan(dat_model *m);

/* Pinned (pinned = 1) while nothing can change the parameters: inside one attack,
 * whose k forward passes then convert the convolution weights into their layers'
 * format once instead of k times. Unpinning (0) makes the next pass convert again. */
void dat_graph_pin_weights(dat_model *m, int pinned);

/* Sets every node's grad_root: which inputs of adds take the add's gradient
 * buffer instead of a copy (grad_share.c). Part of dat_graph_plan. */
void dat_graph_plan_grad_sharing(dat_model *m);

/* Bytes of the output of node i for `batch` samples. */
static inline size_t dat_node_bytes(const dat_node *n, int32_t batch)
{
    return (size_t)batch * (size_t)dat_node_numel(n) * dat_fmt_size(n->fmt);
}

/* Parameter and buffer layout, initialization (init.c). */
dat_status dat_model_layout(dat_model *m);
dat_status dat_model_init_params(dat_model *m, uint64_t seed);

void dat_model_free(dat_model *m);

#endif
