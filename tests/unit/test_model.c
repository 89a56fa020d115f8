/* Models: preset layouts (parameter counts are PyTorch's), seeded initialization,
 * the segment table, fused layers, the gradient buffers the adds share, the op profile
 * and the loss's sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "model/model.h"

static dat_ctx *ctx;

static void setup(void)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = 2;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
}

static void teardown(void)
{
    dat_ctx_destroy(ctx);
}

static int64_t param_count(dat_model *m)
{
    dat_tensor *p;
    int64_t n;
    ck_assert_dat_ok(dat_model_params(m, &p));
    ck_assert_dat_ok(dat_tensor_numel(p, &n));
    return n;
}

START_TEST(test_preset_parameter_counts)
{
    /* The counts of the PyTorch definitions (torchvision's ResNet-50, the
     * TRADES WideResNet-28-10, PreActResNet-18 with its final BN). */
    static const struct {
        const char *name;
        int64_t params;
        int32_t segments, classes;
    } want[] = {
        {"mlp", 269322, 6, 10},
        {"cnn_small", 458570, 10, 10},
        {"preact_resnet18", 11172170, 56, 10},
        {"wrn_28_10", 36479194, 80, 10},
        {"resnet50", 25557032, 161, 1000},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
        dat_model *m = NULL;
        ck_assert_dat_ok(dat_model_create_preset(&m, ctx, want[i].name, NULL));
        ck_assert_msg(param_count(m) == want[i].params, "%s: %lld parameters, expected %lld",
                      want[i].name, (long long)param_count(m), (long long)want[i].params);
        int32_t nseg, classes;
        ck_assert_dat_ok(dat_model_num_segments(m, &nseg));
        ck_assert_int_eq(nseg, want[i].segments);
        ck_assert_dat_ok(dat_model_shape(m, NULL, NULL, NULL, &classes));
        ck_assert_int_eq(classes, want[i].classes);
        /* Segments tile the flat buffer in order, without gaps. */
        int64_t next = 0;
        for (int32_t s = 0; s < nseg; ++s) {
            dat_segment seg = {.size = sizeof seg};
            ck_assert_dat_ok(dat_model_segment(m, s, &seg));
            ck_assert_int_eq(seg.offset, next);
            next += seg.length;
        }
        ck_assert_int_eq(next, want[i].params);
        dat_model_destroy(m);
    }
}
END_TEST

START_TEST(test_segment_names_and_kinds)
{
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "preact_resnet18", NULL));
    dat_segment seg = {.size = sizeof seg};
    ck_assert_dat_ok(dat_model_segment(m, 0, &seg));
    ck_assert_str_eq(seg.name, "conv1.weight");
    ck_assert_int_eq(seg.kind, DAT_SEGMENT_WEIGHT);
    ck_assert_dat_ok(dat_model_segment(m, 1, &seg));
    ck_assert_str_eq(seg.name, "layer1.0.bn1.weight");
    ck_assert_int_eq(seg.kind, DAT_SEGMENT_BN_WEIGHT);
    int found_shortcut = 0;
    int32_t nseg;
    dat_model_num_segments(m, &nseg);
    for (int32_t s = 0; s < nseg; ++s) {
        ck_assert_dat_ok(dat_model_segment(m, s, &seg));
        if (strcmp(seg.name, "layer2.0.shortcut.0.weight") == 0) {
            found_shortcut = 1;
            ck_assert_int_eq(seg.length, 128 * 64);
        }
    }
    ck_assert(found_shortcut);
    ck_assert_dat_ok(dat_model_segment(m, nseg - 1, &seg));
    ck_assert_str_eq(seg.name, "linear.bias");
    ck_assert_int_eq(seg.kind, DAT_SEGMENT_BIAS);
    dat_model_destroy(m);
}
END_TEST

static void read_params(dat_model *m, float *out, size_t n)
{
    dat_tensor *p;
    ck_assert_dat_ok(dat_model_params(m, &p));
    ck_assert_dat_ok(dat_tensor_read(p, out, n * sizeof *out));
}

START_TEST(test_seeded_initialization)
{
    dat_model_options o;
    dat_model_options_init(&o);
    o.init_seed = 17;
    dat_model *a, *b, *c;
    ck_assert_dat_ok(dat_model_create_preset(&a, ctx, "cnn_small", &o));
    ck_assert_dat_ok(dat_model_create_preset(&b, ctx, "cnn_small", &o));
    o.init_seed = 18;
    ck_assert_dat_ok(dat_model_create_preset(&c, ctx, "cnn_small", &o));
    size_t n = 458570;
    float *pa = malloc(n * 4), *pb = malloc(n * 4), *pc = malloc(n * 4);
    read_params(a, pa, n);
    read_params(b, pb, n);
    read_params(c, pc, n);
    ck_assert_mem_eq(pa, pb, n * 4);
    ck_assert(memcmp(pa, pc, n * 4) != 0);
    /* conv1: fan_in 9, bound 1/3; fc1: fan_in 3136, bound 1/56. */
    float max1 = 0, max_fc1 = 0;
    for (int i = 0; i < 288; ++i)
        max1 = fmaxf(max1, fabsf(pa[i]));
    for (size_t i = 320 + 18496 + 36928; i < 320 + 18496 + 36928 + 3136 * 128; ++i)
        max_fc1 = fmaxf(max_fc1, fabsf(pa[i]));
    ck_assert(max1 <= 1.0f / 3 && max1 > 0.3f);
    ck_assert(max_fc1 <= 1.0f / 56 && max_fc1 > 0.017f);
    free(pa);
    free(pb);
    free(pc);
    dat_model_destroy(a);
    dat_model_destroy(b);
    dat_model_destroy(c);
}
END_TEST

START_TEST(test_bn_buffers_start_at_zero_mean_unit_variance)
{
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "preact_resnet18", NULL));
    dat_tensor *buf;
    ck_assert_dat_ok(dat_model_buffers(m, &buf));
    float first[128];
    int64_t n;
    ck_assert_dat_ok(dat_tensor_numel(buf, &n));
    /* Every BN layer contributes mean and variance: 2 x (sum of its channels), per
     * stage bn1 + bn2 of two blocks (the first block's bn1 sees the previous width),
     * plus the final 512-channel BN. */
    int64_t channels = (64 * 4) + (64 + 128 * 3) + (128 + 256 * 3) + (256 + 512 * 3) + 512;
    ck_assert_int_eq(n, 2 * channels);
    float *all = malloc((size_t)n * sizeof *all);
    ck_assert_dat_ok(dat_tensor_read(buf, all, (size_t)n * sizeof *all));
    memcpy(first, all, sizeof first);
    for (int i = 0; i < 64; ++i) {
        ck_assert_float_eq(first[i], 0.0f);
        ck_assert_float_eq(first[64 + i], 1.0f);
    }
    free(all);
    dat_model_destroy(m);

    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "cnn_small", NULL));
    ck_assert_dat_ok(dat_model_buffers(m, &buf));
    ck_assert_ptr_null(buf); /* no batch norm, no buffers */
    dat_model_destroy(m);
}
END_TEST

/* A forward pass whose buffers cannot be allocated (a batch of 2^22 x 2^20 floats) fails
 * with DAT_ERR_OUT_OF_MEMORY, and the activations of the pass before went with the old
 * buffers: asking for them is a state error, not a read of freed memory. */
START_TEST(test_activation_after_a_failed_allocation)
{
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = f && fgetc(f) == '1';
    if (f)
        fclose(f);
    if (mode) { /* the allocation would succeed, and zeroing it exhaust the machine */
        printf("test_activation_after_a_failed_allocation: skipped (vm.overcommit_memory = 1)\n");
        return;
    }
    dat_model_builder *b;
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 1, 1, 1));
    dat_layer_spec s;
    dat_layer_spec_init(&s, DAT_LAYER_LINEAR);
    s.name = "fc1";
    s.out_features = 1 << 20;
    int32_t fc1, fc2;
    ck_assert_dat_ok(dat_model_builder_add(b, &s, 0, -1, &fc1));
    dat_layer_spec_init(&s, DAT_LAYER_LINEAR);
    s.name = "fc2";
    s.out_features = 1;
    ck_assert_dat_ok(dat_model_builder_add(b, &s, fc1, -1, &fc2));
    dat_model *m;
    ck_assert_dat_ok(dat_model_builder_finish(b, fc2, 0, &m));
    dat_model_builder_destroy(b);
    int64_t small[4] = {1, 1, 1, 1}, big[4] = {1 << 22, 1, 1, 1}, one[2] = {1, 1},
            many[2] = {1 << 22, 1}, width[1] = {1 << 20};
    dat_tensor *x, *z, *xb, *zb, *a;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, small));
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, one));
    ck_assert_dat_ok(dat_tensor_create(&xb, ctx, DAT_FLOAT32, 4, big));
    ck_assert_dat_ok(dat_tensor_create(&zb, ctx, DAT_FLOAT32, 2, many));
    ck_assert_dat_ok(dat_tensor_create(&a, ctx, DAT_FLOAT32, 1, width));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    ck_assert_dat_ok(dat_model_activation(m, fc1, a));
    ck_assert_dat_err(dat_model_forward(m, xb, zb), DAT_ERR_OUT_OF_MEMORY, "");
    ck_assert_dat_err(dat_model_activation(m, fc1, a), DAT_ERR_STATE, "could not allocate");
    ck_assert_dat_ok(dat_model_forward(m, x, z)); /* small batches work again */
    ck_assert_dat_ok(dat_model_activation(m, fc1, a));
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_tensor_destroy(xb);
    dat_tensor_destroy(zb);
    dat_tensor_destroy(a);
    dat_model_destroy(m);
}
END_TEST

/* Batch norm over features in train mode: a batch of one sample has one value
 * per channel and is refused (its output would be the shift alone); batch 2,
 * and batch 1 in eval mode, run. */
START_TEST(test_batchnorm_train_needs_two_values)
{
    dat_model_builder *b;
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 4, 1, 1));
    dat_layer_spec s;
    dat_layer_spec_init(&s, DAT_LAYER_LINEAR);
    s.name = "fc1";
    s.out_features = 3;
    int32_t fc1, bn, fc2;
    ck_assert_dat_ok(dat_model_builder_add(b, &s, 0, -1, &fc1));
    dat_layer_spec_init(&s, DAT_LAYER_BATCHNORM);
    s.name = "bn";
    ck_assert_dat_ok(dat_model_builder_add(b, &s, fc1, -1, &bn));
    dat_layer_spec_init(&s, DAT_LAYER_LINEAR);
    s.name = "fc2";
    s.out_features = 2;
    ck_assert_dat_ok(dat_model_builder_add(b, &s, bn, -1, &fc2));
    dat_model *m;
    ck_assert_dat_ok(dat_model_builder_finish(b, fc2, 0, &m));
    dat_model_builder_destroy(b);
    int64_t one[4] = {1, 4, 1, 1}, two[4] = {2, 4, 1, 1}, z1[2] = {1, 2}, z2[2] = {2, 2};
    dat_tensor *x1, *x2, *l1, *l2;
    ck_assert_dat_ok(dat_tensor_create(&x1, ctx, DAT_FLOAT32, 4, one));
    ck_assert_dat_ok(dat_tensor_create(&x2, ctx, DAT_FLOAT32, 4, two));
    ck_assert_dat_ok(dat_tensor_create(&l1, ctx, DAT_FLOAT32, 2, z1));
    ck_assert_dat_ok(dat_tensor_create(&l2, ctx, DAT_FLOAT32, 2, z2));
    ck_assert_dat_ok(dat_model_set_mode(m, DAT_MODE_TRAIN));
    ck_assert_dat_err(dat_model_forward(m, x1, l1), DAT_ERR_INVALID_ARG,
                      "more than one value per channel");
    ck_assert_dat_ok(dat_model_forward(m, x2, l2));
    ck_assert_dat_ok(dat_model_set_mode(m, DAT_MODE_EVAL));
    ck_assert_dat_ok(dat_model_forward(m, x1, l1));
    dat_tensor_destroy(x1);
    dat_tensor_destroy(x2);
    dat_tensor_destroy(l1);
    dat_tensor_destroy(l2);
    dat_model_destroy(m);
}
END_TEST

/* A layer fused with its ReLU does not keep its own output: asking for it is an
 * error that names the ReLU's node; the ReLU's output is there. */
START_TEST(test_activation_of_fused_layers)
{
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "preact_resnet18", NULL));
    int32_t nodes = 0, fused = 0;
    ck_assert_dat_ok(dat_model_num_nodes(m, &nodes));
    int64_t xs[4] = {2, 3, 32, 32};
    dat_tensor *x, *z;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    int64_t zs[2] = {2, 10};
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 3, 0));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    for (int32_t i = 1; i + 1 < nodes; ++i) {
        int32_t kind, next, c, h, w;
        ck_assert_dat_ok(dat_model_node_info(m, i, &kind, &c, &h, &w));
        ck_assert_dat_ok(dat_model_node_info(m, i + 1, &next, NULL, NULL, NULL));
        if (kind != DAT_LAYER_BATCHNORM || next != DAT_LAYER_RELU)
            continue;
        int64_t shape[4] = {2, c, h, w};
        dat_tensor *a;
        ck_assert_dat_ok(dat_tensor_create(&a, ctx, DAT_FLOAT32, 4, shape));
        dat_status st = dat_model_activation(m, i, a);
        if (st != DAT_OK) { /* fused: the ReLU's output is available */
            ck_assert_int_eq(st, DAT_ERR_UNSUPPORTED);
            ck_assert_ptr_nonnull(strstr(dat_last_error(), "not kept"));
            ck_assert_dat_ok(dat_model_activation(m, i + 1, a));
            ++fused;
        }
        dat_tensor_destroy(a);
    }
    ck_assert_int_gt(fused, 0); /* the CPU backend fuses them */
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_model_destroy(m);
}
END_TEST

/* resnet50's blocks end with bn3, the add and a ReLU (the first block: the downsample's
 * batch norm, the add's second input, right before the add): the add computes both (the
 * ReLU fused, the batch norm through dat_bn_desc's residual), in either mode, so neither
 * the batch norm's output nor the add's own is kept; the ReLU's is, and bn3's, which the
 * add does not compute. */
START_TEST(test_activation_of_layers_inside_adds)
{
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.num_classes = 10;
    mo.in_height = mo.in_width = 32;
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "resnet50", &mo));
    int32_t nodes = 0, add = -1, kind, bn_kind, c, h, w;
    ck_assert_dat_ok(dat_model_num_nodes(m, &nodes));
    for (int32_t i = 1; i < nodes && add < 0; ++i) {
        ck_assert_dat_ok(dat_model_node_info(m, i, &kind, NULL, NULL, NULL));
        add = kind == DAT_LAYER_ADD ? i : -1;
    }
    ck_assert_int_gt(add, 0);
    ck_assert_dat_ok(dat_model_node_info(m, add - 1, &bn_kind, &c, &h, &w));
    ck_assert_int_eq(bn_kind, DAT_LAYER_BATCHNORM);
    ck_assert_dat_ok(dat_model_node_info(m, add - 3, &bn_kind, NULL, NULL, NULL));
    ck_assert_int_eq(bn_kind, DAT_LAYER_BATCHNORM);
    int64_t xs[4] = {2, 3, 32, 32}, zs[2] = {2, 10}, as[4] = {2, c, h, w};
    dat_tensor *x, *z, *a;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_tensor_create(&a, ctx, DAT_FLOAT32, 4, as));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 3, 0));
    for (int train = 0; train < 2; ++train) {
        ck_assert_dat_ok(dat_model_set_mode(m, train ? DAT_MODE_TRAIN : DAT_MODE_EVAL));
        ck_assert_dat_ok(dat_model_forward(m, x, z));
        ck_assert_dat_err(dat_model_activation(m, add - 1, a), DAT_ERR_UNSUPPORTED, "not kept");
        ck_assert_dat_err(dat_model_activation(m, add, a), DAT_ERR_UNSUPPORTED, "not kept");
        ck_assert_dat_ok(dat_model_activation(m, add + 1, a));
        ck_assert_dat_ok(dat_model_activation(m, add - 3, a)); /* bn3 */
    }
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_tensor_destroy(a);
    dat_model_destroy(m);
}
END_TEST

/* In the residual presets every input of every add takes the add's gradient buffer
 * (lib/model/grad_share.c): no copy per input and block in a backward pass. The
 * residual stream of preact_resnet18's stages, whose inputs also feed the next block's
 * first batch norm, shares one buffer per stage; its correctness is
 * tests/python/test_graph_gradients.py's. */
START_TEST(test_adds_share_gradient_buffers)
{
    static const char *presets[] = {"preact_resnet18", "resnet50"};
    static const int adds[] = {8, 16}, trees[] = {4, 16};
    for (int p = 0; p < 2; ++p) {
        dat_model *m;
        ck_assert_dat_ok(dat_model_create_preset(&m, ctx, presets[p], NULL));
        int n_adds = 0, roots = 0;
        for (int32_t i = 1; i < m->n_nodes; ++i) {
            const dat_node *n = &m->nodes[i];
            if (n->kind != DAT_LAYER_ADD)
                continue;
            ++n_adds;
            roots += n->grad_root == i;
            ck_assert_int_eq(m->nodes[n->in[0]].grad_root, n->grad_root);
            ck_assert_int_eq(m->nodes[n->in[1]].grad_root, n->grad_root);
        }
        ck_assert_int_eq(n_adds, adds[p]);
        ck_assert_int_eq(roots, trees[p]);
        dat_model_destroy(m);
    }
}
END_TEST

/* DAT_PROFILE_OPS=1: the context books the host time of each backend op and
 * prints the table to stderr when it is destroyed. */
/* loss_sum adds each call's loss on the device: plain, weighted and TRADES. */
START_TEST(test_loss_sum)
{
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "cnn_small", NULL));
    int64_t xs[4] = {3, 1, 28, 28}, ys[1] = {3}, one[1] = {1};
    dat_tensor *x, *xc, *y, *w, *sum;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&xc, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_create(&w, ctx, DAT_FLOAT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_create(&sum, ctx, DAT_FLOAT32, 1, one));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 1, 0));
    ck_assert_dat_ok(dat_tensor_fill_uniform(xc, 0.0f, 1.0f, 2, 0));
    ck_assert_dat_ok(dat_tensor_fill_uniform(w, 0.5f, 2.0f, 3, 0));
    const int32_t labels[3] = {1, 4, 9};
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));
    const float start = 0.25f;
    ck_assert_dat_ok(dat_tensor_write(sum, &start, sizeof start));
    double want = start;
    for (int k = 0; k < 3; ++k) {
        dat_loss_options lo;
        dat_loss_options_init(&lo);
        lo.loss_sum = sum;
        if (k == 1)
            lo.sample_weights = w;
        if (k == 2) { /* TRADES: CE on the clean inputs plus beta KL */
            lo.adv_weight = 0.0f;
            lo.clean_weight = 1.0f;
            lo.kl_weight = 6.0f;
            lo.x_clean = xc;
            lo.reduction = DAT_REDUCE_SUM;
        }
        float l = 0;
        ck_assert_dat_ok(dat_model_loss_backward(m, x, y, &lo, &l));
        want += l;
        float got = 0;
        ck_assert_dat_ok(dat_tensor_read(sum, &got, sizeof got));
        ck_assert_msg(fabs(got - want) <= 1e-5 * fabs(want), "call %d: loss_sum %.7g, want %.7g",
                      k, (double)got, want);
    }
    dat_tensor_destroy(x);
    dat_tensor_destroy(xc);
    dat_tensor_destroy(y);
    dat_tensor_destroy(w);
    dat_tensor_destroy(sum);
    dat_model_destroy(m);
}
END_TEST

START_TEST(test_op_profile)
{
    char path[] = "/tmp/libdat-profile-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    setenv("DAT_PROFILE_OPS", "1", 1);
    dat_ctx *pc;
    ck_assert_dat_ok(dat_ctx_create(&pc, NULL));
    unsetenv("DAT_PROFILE_OPS");
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, pc, "mlp", NULL));
    int64_t xs[4] = {4, 1, 28, 28}, zs[2] = {4, 10};
    dat_tensor *x, *z;
    ck_assert_dat_ok(dat_tensor_create(&x, pc, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&z, pc, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_model_destroy(m);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    dat_ctx_destroy(pc); /* prints the table */
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char text[4096] = {0};
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_int_gt(read(fd, text, sizeof text - 1), 0);
    close(fd);
    unlink(path);
    /* three linear layers and two ReLUs per forward, two forwards */
    const char *ops[2] = {"linear_fwd", "relu_fwd"};
    const unsigned long long want[2] = {6, 4};
    for (int k = 0; k < 2; ++k) {
        const char *row = strstr(text, ops[k]);
        unsigned long long calls = 0;
        ck_assert_msg(row && sscanf(row + strlen(ops[k]), "%llu", &calls) == 1 &&
                          calls == want[k],
                      "%s: %llu calls, want %llu; table:\n%s", ops[k], calls, want[k], text);
    }
    ck_assert_msg(strstr(text, "ops "), "table:\n%s", text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_preset_parameter_counts);
    tcase_add_test(tc, test_segment_names_and_kinds);
    tcase_add_test(tc, test_seeded_initialization);
    tcase_add_test(tc, test_bn_buffers_start_at_zero_mean_unit_variance);
    tcase_add_test(tc, test_activation_after_a_failed_allocation);
    tcase_add_test(tc, test_activation_of_fused_layers);
    tcase_add_test(tc, test_batchnorm_train_needs_two_values);
    tcase_add_test(tc, test_activation_of_layers_inside_adds);
    tcase_add_test(tc, test_adds_share_gradient_buffers);
    tcase_add_test(tc, test_op_profile);
    tcase_add_test(tc, test_loss_sum);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
