/**
 * @file dat_model.h
 * @brief Models: a layer graph with all parameters in one flat buffer, its
 *        forward pass, the training loss with its backward pass, and the
 *        input-gradient-only backward that attacks use.
 *
 * A model is made from a preset (dat_model_create_preset()) or layer by
 * layer with a builder. Inputs are float32 NCHW tensors in pixel space (the
 * per-channel normalization happens inside the model), labels are int32
 * tensors of shape [N], logits float32 [N, classes]. Buffers for activations
 * are sized by the largest batch seen and then reused: a training step
 * allocates nothing once shapes are known.
 */
#ifndef LIBDAT_DAT_MODEL_H
#define LIBDAT_DAT_MODEL_H

#include "dat_segment.h"
#include "dat_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque model. */
typedef struct dat_model dat_model;
/** @brief Opaque model builder. */
typedef struct dat_model_builder dat_model_builder;

/** @brief Batch-norm behaviour. Values are fixed. */
typedef enum dat_model_mode {
    DAT_MODE_TRAIN = 0, /**< batch statistics; running statistics are updated */
    DAT_MODE_EVAL = 1,  /**< running statistics */
    DAT_MODE_FORCE_32BIT = 0x7fffffff
} dat_model_mode;

/** @brief Layer kinds of the builder. Values are fixed. */
typedef enum dat_layer_kind {
    DAT_LAYER_CONV2D = 0,         /**< out_features channels, kernel x kernel, stride, padding, bias */
    DAT_LAYER_LINEAR = 1,         /**< out_features outputs; the input is flattened */
    DAT_LAYER_BATCHNORM = 2,      /**< BatchNorm2d (or 1d on [N, F]); bn_eps, bn_momentum;
                                       in train mode a batch needs N x H x W > 1 */
    DAT_LAYER_RELU = 3,
    DAT_LAYER_MAXPOOL = 4,        /**< kernel, stride, padding */
    DAT_LAYER_AVGPOOL = 5,        /**< kernel, stride, padding (padding counted, as PyTorch) */
    DAT_LAYER_GLOBAL_AVGPOOL = 6, /**< mean over H x W (H = W): [N, C, H, W] -> [N, C, 1, 1] */
    DAT_LAYER_FLATTEN = 7,        /**< [N, C, H, W] -> [N, C*H*W] */
    DAT_LAYER_ADD = 8,            /**< element-wise sum of two nodes of the same shape */
    DAT_LAYER_KIND_FORCE_32BIT = 0x7fffffff
} dat_layer_kind;

/** @brief One layer for dat_model_builder_add(); fill with dat_layer_spec_init(). */
typedef struct dat_layer_spec {
    uint32_t size;          /**< sizeof(dat_layer_spec), set by dat_layer_spec_init(). */
    dat_layer_kind kind;    /**< the layer's kind, set by dat_layer_spec_init() */
    const char *name;       /**< state_dict prefix of its parameters, e.g. "layer1.0.conv1";
                                 required for layers with parameters; copied. */
    int32_t out_features;   /**< conv: output channels; linear: outputs */
    int32_t kernel;         /**< conv and pools; default 3 */
    int32_t stride;         /**< default 1 */
    int32_t padding;        /**< default 0 */
    int32_t bias;           /**< conv / linear: 1 (default) adds a bias */
    float bn_eps;           /**< default 1e-5 */
    float bn_momentum;      /**< default 0.1 (PyTorch's convention) */
} dat_layer_spec;

/**
 * @brief Fills @p spec with the defaults for @p kind and sets its size.
 * @param[out] spec  the spec to fill (name NULL, kernel 3, stride 1, padding 0,
 *                   bias 1, bn_eps 1e-5, bn_momentum 0.1, out_features 0).
 * @param kind  the layer kind.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or an unknown kind.
 */
DAT_API dat_status dat_layer_spec_init(dat_layer_spec *spec, dat_layer_kind kind);
/**
 * @brief dat_layer_spec_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_layer_spec_init() macro passes sizeof *(spec), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] spec  the spec to fill.
 * @param kind  the layer kind.
 * @param size  bytes at @p spec, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL, an unknown kind or @p size < 4.
 */
DAT_API dat_status dat_layer_spec_init_sized(dat_layer_spec *spec, dat_layer_kind kind,
                                             size_t size);
/** @brief Fills @p spec (see dat_layer_spec_init_sized()). */
#define dat_layer_spec_init(spec, kind) dat_layer_spec_init_sized((spec), (kind), sizeof *(spec))

/**
 * @brief Starts a model whose input is [N, channels, height, width]. The
 *        input is node 0.
 * @param[out] out  receives the builder, owned by the caller and freed with
 *                  dat_model_builder_destroy(); NULL on failure.
 * @param ctx  the context the model will live in.
 * @param channels, height, width  the shape of one input sample, each > 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or sizes <= 0;
 *         DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_model_builder_create(dat_model_builder **out, dat_ctx *ctx,
                                            int32_t channels, int32_t height, int32_t width);

/**
 * @brief Destroys a builder. Models made from it stay valid.
 * @param builder  the builder, or NULL (a no-op).
 */
DAT_API void dat_model_builder_destroy(dat_model_builder *builder);

/**
 * @brief Per-channel input normalization, (x - mean[c]) / std[c], applied
 *        inside the model so that attacks work in pixel space.
 * @param builder  the builder.
 * @param mean  one value per input channel; copied.
 * @param std  one value per input channel, each > 0; copied.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a std <= 0 or a mean
 *         not finite, or a scale 1 / std or shift mean / std past float.
 */
DAT_API dat_status dat_model_builder_set_normalization(dat_model_builder *builder,
                                                       const float *mean, const float *std);

/**
 * @brief Appends a layer fed by node @p input (and @p input2 for DAT_LAYER_ADD).
 * @param builder  the builder.
 * @param spec  the layer, from dat_layer_spec_init(); read during the call
 *              only (spec->name is copied).
 * @param input  id of the node that feeds the layer (0 = the input).
 * @param input2  second input of DAT_LAYER_ADD; -1 for the other kinds.
 * @param[out] node  receives the new node's id (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a wrong spec->size,
 *         an input that does not exist, shapes that do not fit (the message
 *         gives both), a missing or repeated parameter name; the builder is
 *         unchanged then.
 */
DAT_API dat_status dat_model_builder_add(dat_model_builder *builder, const dat_layer_spec *spec,
                                         int32_t input, int32_t input2, int32_t *node);

/**
 * @brief Makes a model whose output (the logits, [N, classes]) is node @p output.
 *
 * Parameters are initialized as PyTorch does by default (uniform with bound
 * 1/sqrt(fan_in) for weights and biases; BN scale 1, shift 0), drawn from the
 * context's Philox generator with @p init_seed. The builder stays usable.
 * @param builder  the builder.
 * @param output  the node whose output is the logits: [N, classes] (or
 *                [N, classes, 1, 1]).
 * @param init_seed  the stream of the initial parameters.
 * @param[out] out  receives the model, owned by the caller and freed with
 *                  dat_model_destroy() before the context; NULL on failure.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a bad @p output;
 *         DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_model_builder_finish(dat_model_builder *builder, int32_t output,
                                            uint64_t init_seed, dat_model **out);

/** @brief Options of dat_model_create_preset(); fill with dat_model_options_init(). */
typedef struct dat_model_options {
    uint32_t size;         /**< sizeof(dat_model_options), set by dat_model_options_init(). */
    int32_t num_classes;   /**< 0 (default): the preset's (10; 1000 for resnet50) */
    int32_t in_channels;   /**< 0 (default): the preset's */
    int32_t in_height;     /**< 0 (default): the preset's */
    int32_t in_width;      /**< 0 (default): the preset's */
    const float *mean;     /**< per-channel normalization, NULL (default) for none; copied */
    const float *std;      /**< with mean */
    uint64_t init_seed;    /**< default 0 */
} dat_model_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_model_options_init(dat_model_options *opts);
/**
 * @brief dat_model_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_model_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_model_options_init_sized(dat_model_options *opts, size_t size);
/** @brief Fills @p opts (see dat_model_options_init_sized()). */
#define dat_model_options_init(opts) dat_model_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Makes a model from a preset.
 *
 * "mlp" (1x28x28: 784-256-256-classes), "cnn_small" (1x28x28),
 * "preact_resnet18" (3x32x32), "wrn_28_10" (3x32x32), "resnet50" (3x224x224).
 * Parameter names are those of the PyTorch definitions in tests/python/models.py;
 * initialization as dat_model_builder_finish() with opts->init_seed.
 * @param[out] out  receives the model, owned by the caller and freed with
 *                  dat_model_destroy() before @p ctx; NULL on failure.
 * @param ctx  the context the model lives in.
 * @param preset  the preset's name.
 * @param opts  options, or NULL for the defaults; read during the call only
 *              (mean and std are copied).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, bad options or an
 *         unknown name (the message lists the presets); DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_model_create_preset(dat_model **out, dat_ctx *ctx, const char *preset,
                                           const dat_model_options *opts);

/**
 * @brief Destroys a model with its flat buffers (the tensors of
 *        dat_model_params(), dat_model_grads() and dat_model_buffers()).
 * @param model  the model, or NULL (a no-op).
 */
DAT_API void dat_model_destroy(dat_model *model);

/**
 * @brief Sets train or eval mode (batch norm). New models are in train mode.
 * @param model  the model.
 * @param mode  DAT_MODE_TRAIN or DAT_MODE_EVAL.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or an unknown mode.
 */
DAT_API dat_status dat_model_set_mode(dat_model *model, dat_model_mode mode);
/**
 * @brief Current mode.
 * @param model  the model.
 * @param[out] mode  receives the mode.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_mode_get(const dat_model *model, dat_model_mode *mode);

/**
 * @brief Shape of one input sample and number of classes.
 * @param model  the model.
 * @param[out] channels, height, width  the input sample's shape (each may be NULL).
 * @param[out] num_classes  the number of logits per sample (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p model is NULL.
 */
DAT_API dat_status dat_model_shape(const dat_model *model, int32_t *channels, int32_t *height,
                                   int32_t *width, int32_t *num_classes);

/**
 * @brief Forward pass: @p logits [N, classes] of the inputs @p x [N, C, H, W].
 *        In train mode batch statistics are used and the running statistics updated.
 * @param model  the model.
 * @param x  float32 inputs in pixel space.
 * @param[out] logits  float32 [N, classes].
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or shapes that do not
 *         fit the model (the message gives both); DAT_ERR_NUMERIC if @p x holds
 *         NaN or Inf; DAT_ERR_OUT_OF_MEMORY when a larger batch needs buffers
 *         (the running statistics are then as they were).
 */
DAT_API dat_status dat_model_forward(dat_model *model, const dat_tensor *x, dat_tensor *logits);

/**
 * @brief The training objective of dat_model_loss_backward():
 *
 *     loss = adv_weight * CE(f(x), y) + clean_weight * CE(f(x_clean), y)
 *          + kl_weight * KL(p(x_clean) || p(x))
 *
 * reduced over the batch, with x the (adversarial) input. adv_weight = 1 alone
 * is Madry AT; clean_weight = lambda adds the clean loss of the DAT reference
 * code; adv_weight = 0, clean_weight = 1, kl_weight = beta is TRADES (no
 * labels needed for the KL term). Fill with dat_loss_options_init().
 */
typedef struct dat_loss_options {
    uint32_t size;                   /**< set by dat_loss_options_init() */
    float adv_weight;                /**< default 1 */
    float clean_weight;              /**< default 0; needs x_clean */
    float kl_weight;                 /**< default 0; needs x_clean */
    const dat_tensor *x_clean;       /**< clean inputs, same shape as x; default NULL */
    const dat_tensor *sample_weights;/**< float32 [N] weights of the CE terms (MEAN still
                                          divides by N, not by their sum); default NULL */
    dat_reduction reduction;         /**< default DAT_REDUCE_MEAN */
    int32_t accumulate;              /**< 1: add to the gradient buffer; 0 (default): overwrite */
    /* Appended in 0.5.0. */
    dat_tensor *loss_sum;            /**< NULL (default), or a float32 tensor of one element in
                                          the model's context: the reduced loss is added to it
                                          on the device, with nothing read back (what a step
                                          graph can do; dat_capture.h). */
} dat_loss_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_loss_options_init(dat_loss_options *opts);
/**
 * @brief dat_loss_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_loss_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_loss_options_init_sized(dat_loss_options *opts, size_t size);
/** @brief Fills @p opts (see dat_loss_options_init_sized()). */
#define dat_loss_options_init(opts) dat_loss_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Loss and its gradient w.r.t. every parameter, written into (or, with
 *        opts->accumulate, added to) the flat gradient buffer (dat_model_grads()).
 *
 * Parameters the loss does not reach (a dead branch, layers after the output)
 * get gradient 0. PyTorch leaves theirs None and its optimizers skip them;
 * dat_optim's weight decay and momentum still move them: freeze their segments
 * (dat_optim_set_lr_scale() with 0) to keep them as they are.
 *
 * The first call with a batch size and set of terms keeps a copy of the
 * gradients (and BN statistics) while it runs, to put them back if it fails
 * part-way: its peak memory is one gradient buffer above later calls'. While
 * a dat_grad_sync is armed the gradients are the synchronizer's (its buckets
 * are reduced as the pass goes): after a failure there, dat_grad_sync_end()
 * still reduces what the pass left, and the step's gradients are not to be used.
 * @param model  the model (its mode decides batch statistics, as in forward).
 * @param x  float32 [N, C, H, W]: the (adversarial) inputs.
 * @param y  int32 labels [N] in [0, classes); may be NULL when only kl_weight is set.
 * @param opts  NULL for the defaults (CE on x, mean); the tensors it names are
 *              read during the call only.
 * @param[out] loss  receives the reduced loss (may be NULL; must be NULL while
 *                   the context records a step graph: use opts->loss_sum).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, shapes or labels out
 *         of range (nothing is changed then); DAT_ERR_NUMERIC for NaN / Inf in
 *         the inputs, or in the loss (found after the pass: the gradients and BN
 *         statistics hold its results); DAT_ERR_OUT_OF_MEMORY (nothing is
 *         changed then, also when memory ran out part-way through the pass).
 */
DAT_API dat_status dat_model_loss_backward(dat_model *model, const dat_tensor *x,
                                           const dat_tensor *y, const dat_loss_options *opts,
                                           float *loss);

/** @brief Objective of the input-gradient-only backward. Values are fixed. */
typedef enum dat_objective {
    DAT_OBJECTIVE_CE = 0,  /**< cross-entropy against the labels */
    DAT_OBJECTIVE_KL = 1,  /**< KL(softmax(target_logits) || softmax(f(x))), TRADES */
    DAT_OBJECTIVE_FORCE_32BIT = 0x7fffffff
} dat_objective;

/** @brief Options of dat_model_input_grad(); fill with dat_input_grad_options_init(). */
typedef struct dat_input_grad_options {
    uint32_t size;                 /**< set by dat_input_grad_options_init() */
    dat_objective objective;       /**< default DAT_OBJECTIVE_CE */
    const dat_tensor *target_logits; /**< [N, classes] for DAT_OBJECTIVE_KL */
    dat_reduction reduction;       /**< default DAT_REDUCE_SUM: per-sample gradients unscaled */
    dat_tensor *sample_losses;     /**< optional output: float32 [N] per-sample losses */
    dat_tensor *logits;            /**< optional output: float32 [N, classes] */
} dat_input_grad_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_input_grad_options_init(dat_input_grad_options *opts);
/**
 * @brief dat_input_grad_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_input_grad_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_input_grad_options_init_sized(dat_input_grad_options *opts, size_t size);
/** @brief Fills @p opts (see dat_input_grad_options_init_sized()). */
#define dat_input_grad_options_init(opts) dat_input_grad_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Gradient of the objective w.r.t. the input only: no parameter
 *        gradient is computed or changed. Batch norm follows the model's mode
 *        (the caller chooses: eval by default in attacks).
 * @param model  the model.
 * @param x  float32 [N, C, H, W].
 * @param y  int32 labels [N] for DAT_OBJECTIVE_CE; may be NULL for KL.
 * @param opts  NULL for the defaults (CE, sum); its output tensors
 *              (sample_losses, logits) are written if set.
 * @param[out] dx  float32, same shape as @p x.
 * @param[out] loss  the reduced objective (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, shapes or labels out
 *         of range; DAT_ERR_NUMERIC for NaN / Inf in the inputs.
 */
DAT_API dat_status dat_model_input_grad(dat_model *model, const dat_tensor *x,
                                        const dat_tensor *y,
                                        const dat_input_grad_options *opts, dat_tensor *dx,
                                        float *loss);

/**
 * @brief The flat parameter buffer, float32 [count].
 * @param model  the model.
 * @param[out] params  receives the tensor, owned by the model (do not destroy
 *                     it); valid until the model is destroyed. Writing to it
 *                     changes the model.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_params(dat_model *model, dat_tensor **params);
/**
 * @brief The flat gradient buffer, laid out as the parameters.
 * @param model  the model.
 * @param[out] grads  receives the tensor, owned by the model (do not destroy
 *                    it); valid until the model is destroyed.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_grads(dat_model *model, dat_tensor **grads);
/**
 * @brief The flat buffer of batch-norm running statistics (each BN layer's
 *        running_mean then running_var), float32.
 * @param model  the model.
 * @param[out] buffers  receives the tensor, owned by the model (do not destroy
 *                      it), or NULL for a model without batch norm.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_buffers(dat_model *model, dat_tensor **buffers);

/**
 * @brief Number of parameter segments (tensors).
 * @param model  the model.
 * @param[out] count  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_num_segments(const dat_model *model, int32_t *count);
/**
 * @brief Segment @p index of the parameters.
 * @param model  the model.
 * @param index  0 to dat_model_num_segments() - 1.
 * @param[in,out] seg  seg->size must be set to sizeof(dat_segment); the rest is
 *                     filled. seg->name stays valid while the model lives.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a wrong seg->size or
 *         an index out of range.
 */
DAT_API dat_status dat_model_segment(const dat_model *model, int32_t index, dat_segment *seg);

/**
 * @brief Number of layers with parameters. A layer is a PyTorch module: the
 *        consecutive segments whose names share the part before the last '.'
 *        ("net.6.weight" and "net.6.bias" form layer "net.6"). The last layer
 *        is the classifier (the head of transfer learning).
 * @param model  the model.
 * @param[out] count  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_num_layers(const dat_model *model, int32_t *count);

/**
 * @brief The segments of a layer.
 * @param model  the model.
 * @param layer  0 <= layer < dat_model_num_layers().
 * @param[out] first_segment  receives the index of its first segment.
 * @param[out] num_segments  receives the number of its segments.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a layer out of range.
 */
DAT_API dat_status dat_model_layer_segments(const dat_model *model, int32_t layer,
                                            int32_t *first_segment, int32_t *num_segments);

/**
 * @brief Writes the model's state_dict to a safetensors file.
 *
 * Every parameter, and each batch-norm layer's running_mean, running_var and
 * num_batches_tracked, with PyTorch's names and shapes; metadata "input_shape"
 * (CxHxW) and "input_mean" / "input_std" (the input normalization's values,
 * comma-separated, or "none"). The file is written to a temporary name,
 * fsync'ed and renamed, so @p path never holds a partial file.
 * @param model  the model.
 * @param path  the file to write.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers; DAT_ERR_IO naming the
 *         path and the system's reason (a file already at @p path is kept, but
 *         when only the folder's fsync after the rename fails: the new file is
 *         then in place and may not survive a crash).
 */
DAT_API dat_status dat_model_save(dat_model *model, const char *path);

/** @brief When dat_model_load() leaves the classifier as the model initialized
 *         it (transfer learning). Values are fixed. */
typedef enum dat_reinit_head {
    DAT_REINIT_HEAD_NEVER = 0,         /**< every tensor comes from the file */
    DAT_REINIT_HEAD_IF_MISMATCHED = 1, /**< when a classifier tensor is missing or has another
                                            shape (another number of classes) */
    DAT_REINIT_HEAD_ALWAYS = 2,        /**< always (a new task with as many classes) */
    DAT_REINIT_HEAD_FORCE_32BIT = 0x7fffffff
} dat_reinit_head;

/** @brief Options of dat_model_load(); fill with dat_model_load_options_init(). */
typedef struct dat_model_load_options {
    uint32_t size;              /**< set by dat_model_load_options_init() */
    int32_t ignore_unexpected;  /**< 1: tensors the model lacks are ignored; 0 (default):
                                     refused, except optimizer / trainer state
                                     ("optim.*", "train.*") */
    /* Appended later: callers built against the shorter struct pass its smaller size. */
    dat_reinit_head reinit_head; /**< when the classifier (the last layer, see
                                     dat_model_num_layers()) keeps the model's own values, as
                                     initialized, instead of the file's; every other tensor
                                     must still match. Default DAT_REINIT_HEAD_NEVER. */
    /** Called once per tensor of the model (parameters, then BN buffers) after a
     *  successful load, with loaded = 1 when it came from the file and 0 when the
     *  model kept its own; NULL (default) for no report. */
    void (*on_tensor)(const char *name, int32_t loaded, void *user);
    void *user;                 /**< passed to on_tensor */
} dat_model_load_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_model_load_options_init(dat_model_load_options *opts);
/**
 * @brief dat_model_load_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_model_load_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_model_load_options_init_sized(dat_model_load_options *opts, size_t size);
/** @brief Fills @p opts (see dat_model_load_options_init_sized()). */
#define dat_model_load_options_init(opts) dat_model_load_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Loads a state_dict written by dat_model_save() or by PyTorch
 *        (safetensors, float32, PyTorch's names). All or nothing: the model
 *        changes only if every tensor is present with the right dtype and shape.
 * @param model  the model.
 * @param path  the file to read.
 * @param opts  NULL for the defaults.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers; DAT_ERR_IO if the file
 *         cannot be read; DAT_ERR_FORMAT for a malformed file (truncated,
 *         hostile header) or one of another model, with a message naming the
 *         file and the first mismatched tensor; also for a file whose
 *         metadata records another input normalization than the model's
 *         (files without that record, PyTorch's, are not checked).
 */
DAT_API dat_status dat_model_load(dat_model *model, const char *path,
                                  const dat_model_load_options *opts);

/**
 * @brief Number of nodes of the model's graph (node 0 is the input).
 * @param model  the model.
 * @param[out] count  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_model_num_nodes(const dat_model *model, int32_t *count);

/**
 * @brief Kind and per-sample output shape of node @p node.
 * @param model  the model.
 * @param node  0 to dat_model_num_nodes() - 1.
 * @param[out] kind  receives the ::dat_layer_kind, -1 for node 0 (may be NULL).
 * @param[out] channels, height, width  the output's per-sample shape (each may
 *                                      be NULL; [N, F] outputs give F, 1, 1).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL model or a bad node.
 */
DAT_API dat_status dat_model_node_info(const dat_model *model, int32_t node, int32_t *kind,
                                       int32_t *channels, int32_t *height, int32_t *width);

/**
 * @brief Copies the output of node @p node from the last forward pass (any call
 *        that ran one: forward, loss, input gradient, attack), for feature
 *        extraction and inspection.
 * @param model  the model.
 * @param node  1 to dat_model_num_nodes() - 1 (node 0 is the caller's input).
 * @param[out] out  float32 with N x channels x height x width elements, N the
 *                  batch of that pass.
 * @return DAT_OK; DAT_ERR_STATE before any forward pass; DAT_ERR_INVALID_ARG
 *         for NULL pointers, a bad node or an output of the wrong size;
 *         DAT_ERR_UNSUPPORTED for a convolution, batch norm or add that the
 *         backend computes together with the ReLU after it (its own output is
 *         not kept; the ReLU's node, @p node + 1, has the result), and for a
 *         batch norm that only the residual add after it reads, which that add
 *         computes (its own output is not kept either).
 */
DAT_API dat_status dat_model_activation(dat_model *model, int32_t node, dat_tensor *out);

#ifdef __cplusplus
}
#endif

#endif
