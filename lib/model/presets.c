/* The preset architectures, with PyTorch's state_dict names (their PyTorch
 * twins are in tests/python/models.py). */
#include <stdio.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "model.h"

typedef struct net {
    dat_model_builder *b;
    dat_status status; /* first failure; later calls do nothing */
} net;

static int32_t add(net *t, dat_layer_kind kind, const char *name, int32_t in, int32_t in2,
                   int32_t out, int32_t k, int32_t stride, int32_t pad, int32_t bias)
{
    if (t->status != DAT_OK)
        return -1;
    dat_layer_spec s;
    dat_layer_spec_init(&s, kind);
    s.name = name;
    s.out_features = out;
    s.kernel = k;
    s.stride = stride;
    s.padding = pad;
    s.bias = bias;
    int32_t node = -1;
    t->status = dat_model_builder_add(t->b, &s, in, in2, &node);
    return node;
}

static int32_t conv(net *t, const char *name, int32_t in, int32_t out, int32_t k, int32_t stride,
                    int32_t pad, int32_t bias)
{
    return add(t, DAT_LAYER_CONV2D, name, in, -1, out, k, stride, pad, bias);
}

static int32_t bn(net *t, const char *name, int32_t in)
{
    return add(t, DAT_LAYER_BATCHNORM, name, in, -1, 0, 0, 1, 0, 0);
}

static int32_t relu(net *t, int32_t in)
{
    return add(t, DAT_LAYER_RELU, NULL, in, -1, 0, 0, 1, 0, 0);
}

static int32_t linear(net *t, const char *name, int32_t in, int32_t out)
{
    return add(t, DAT_LAYER_LINEAR, name, in, -1, out, 0, 1, 0, 1);
}

static int32_t sum(net *t, int32_t a, int32_t b)
{
    return add(t, DAT_LAYER_ADD, NULL, a, b, 0, 0, 1, 0, 0);
}

/* "layer1.0" + ".bn1" -> "layer1.0.bn1", in buf. */
static const char *join(char *buf, size_t len, const char *prefix, const char *suffix)
{
    snprintf(buf, len, "%s%s", prefix, suffix);
    return buf;
}

static int32_t build_mlp(net *t, int32_t classes)
{
    int32_t x = add(t, DAT_LAYER_FLATTEN, NULL, 0, -1, 0, 0, 1, 0, 0);
    x = relu(t, linear(t, "fc1", x, 256));
    x = relu(t, linear(t, "fc2", x, 256));
    return linear(t, "fc3", x, classes);
}

static int32_t build_cnn_small(net *t, int32_t classes)
{
    int32_t x = relu(t, conv(t, "conv1", 0, 32, 3, 1, 1, 1));
    x = relu(t, conv(t, "conv2", x, 64, 3, 2, 1, 1));
    x = relu(t, conv(t, "conv3", x, 64, 3, 2, 1, 1));
    x = relu(t, linear(t, "fc1", x, 128));
    return linear(t, "fc2", x, classes);
}

/* PreActBlock: out = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut, where the
 * shortcut is x, or a 1x1 convolution of relu(bn1(x)) when the shape changes. */
static int32_t preact_block(net *t, const char *prefix, int32_t x, int32_t in_planes,
                            int32_t planes, int32_t stride)
{
    char a[96];
    int32_t o = relu(t, bn(t, join(a, sizeof a, prefix, ".bn1"), x));
    int32_t shortcut = x;
    if (stride != 1 || in_planes != planes)
        shortcut = conv(t, join(a, sizeof a, prefix, ".shortcut.0"), o, planes, 1,
                        stride, 0, 0);
    o = conv(t, join(a, sizeof a, prefix, ".conv1"), o, planes, 3, stride, 1, 0);
    o = relu(t, bn(t, join(a, sizeof a, prefix, ".bn2"), o));
    o = conv(t, join(a, sizeof a, prefix, ".conv2"), o, planes, 3, 1, 1, 0);
    return sum(t, o, shortcut);
}

static int32_t build_preact_resnet18(net *t, int32_t classes)
{
    static const int32_t planes[4] = {64, 128, 256, 512};
    int32_t x = conv(t, "conv1", 0, 64, 3, 1, 1, 0), in = 64;
    char prefix[64];
    for (int l = 0; l < 4; ++l)
        for (int b = 0; b < 2; ++b) {
            snprintf(prefix, sizeof prefix, "layer%d.%d", l + 1, b);
            x = preact_block(t, prefix, x, in, planes[l], b == 0 && l > 0 ? 2 : 1);
            in = planes[l];
        }
    x = relu(t, bn(t, "bn", x));
    x = add(t, DAT_LAYER_AVGPOOL, NULL, x, -1, 0, 4, 4, 0, 0);
    return linear(t, "linear", x, classes);
}

/* WideResNet BasicBlock (the TRADES / Madry-lab definition). */
static int32_t wide_block(net *t, const char *prefix, int32_t x, int32_t in_planes,
                          int32_t out_planes, int32_t stride)
{
    char a[96];
    int equal = in_planes == out_planes;
    int32_t act = relu(t, bn(t, join(a, sizeof a, prefix, ".bn1"), x));
    int32_t o = conv(t, join(a, sizeof a, prefix, ".conv1"), act, out_planes, 3,
                     stride, 1, 0);
    o = relu(t, bn(t, join(a, sizeof a, prefix, ".bn2"), o));
    o = conv(t, join(a, sizeof a, prefix, ".conv2"), o, out_planes, 3, 1, 1, 0);
    int32_t shortcut = equal ? x
                             : conv(t, join(a, sizeof a, prefix, ".convShortcut"),
                                    act, out_planes, 1, stride, 0, 0);
    return sum(t, shortcut, o);
}

static int32_t build_wrn_28_10(net *t, int32_t classes)
{
    static const int32_t widths[3] = {160, 320, 640};
    int32_t x = conv(t, "conv1", 0, 16, 3, 1, 1, 0), in = 16;
    char prefix[64];
    for (int g = 0; g < 3; ++g)
        for (int i = 0; i < 4; ++i) {
            snprintf(prefix, sizeof prefix, "block%d.layer.%d", g + 1, i);
            x = wide_block(t, prefix, x, in, widths[g], i == 0 && g > 0 ? 2 : 1);
            in = widths[g];
        }
    x = relu(t, bn(t, "bn1", x));
    x = add(t, DAT_LAYER_AVGPOOL, NULL, x, -1, 0, 8, 8, 0, 0);
    return linear(t, "fc", x, classes);
}

/* torchvision's Bottleneck (stride on the 3x3 convolution, "ResNet v1.5"). */
static int32_t bottleneck(net *t, const char *prefix, int32_t x, int32_t in_planes,
                          int32_t planes, int32_t stride)
{
    char a[96];
    int32_t o = relu(t, bn(t, join(a, sizeof a, prefix, ".bn1"),
                           conv(t, join(a, sizeof a, prefix, ".conv1"), x, planes,
                                1, 1, 0, 0)));
    o = relu(t, bn(t, join(a, sizeof a, prefix, ".bn2"),
                   conv(t, join(a, sizeof a, prefix, ".conv2"), o, planes, 3,
                        stride, 1, 0)));
    o = bn(t, join(a, sizeof a, prefix, ".bn3"),
           conv(t, join(a, sizeof a, prefix, ".conv3"), o, 4 * planes, 1, 1, 0, 0));
    int32_t identity = x;
    if (stride != 1 || in_planes != 4 * planes)
        identity = bn(t, join(a, sizeof a, prefix, ".downsample.1"),
                      conv(t, join(a, sizeof a, prefix, ".downsample.0"), x,
                           4 * planes, 1, stride, 0, 0));
    return relu(t, sum(t, o, identity));
}

static int32_t build_resnet50(net *t, int32_t classes)
{
    static const int32_t planes[4] = {64, 128, 256, 512}, blocks[4] = {3, 4, 6, 3};
    int32_t x = relu(t, bn(t, "bn1", conv(t, "conv1", 0, 64, 7, 2, 3, 0)));
    x = add(t, DAT_LAYER_MAXPOOL, NULL, x, -1, 0, 3, 2, 1, 0);
    int32_t in = 64;
    char prefix[64];
    for (int l = 0; l < 4; ++l)
        for (int b = 0; b < blocks[l]; ++b) {
            snprintf(prefix, sizeof prefix, "layer%d.%d", l + 1, b);
            x = bottleneck(t, prefix, x, in, planes[l], b == 0 && l > 0 ? 2 : 1);
            in = 4 * planes[l];
        }
    x = add(t, DAT_LAYER_GLOBAL_AVGPOOL, NULL, x, -1, 0, 0, 1, 0, 0);
    return linear(t, "fc", x, classes);
}

typedef struct preset {
    const char *name;
    int32_t c, h, w, classes;
    int32_t (*build)(net *t, int32_t classes);
} preset;

static const preset presets[] = {
    {"mlp", 1, 28, 28, 10, build_mlp},
    {"cnn_small", 1, 28, 28, 10, build_cnn_small},
    {"preact_resnet18", 3, 32, 32, 10, build_preact_resnet18},
    {"wrn_28_10", 3, 32, 32, 10, build_wrn_28_10},
    {"resnet50", 3, 224, 224, 1000, build_resnet50},
};

dat_status (dat_model_options_init)(dat_model_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_model_options){.size = sizeof(dat_model_options)};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_model_options)

static dat_status check_options(const dat_model_options *o)
{
    if (o->num_classes < 0 || o->in_channels < 0 || o->in_height < 0 || o->in_width < 0)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_create_preset",
                         "num_classes / in_channels / in_height / in_width must be >= 0 "
                         "(0 = the preset's), got %d / %d / %d / %d",
                         (int)o->num_classes, (int)o->in_channels, (int)o->in_height,
                         (int)o->in_width);
    if ((o->mean == NULL) != (o->std == NULL))
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_create_preset",
                         "mean and std must be given together");
    return DAT_OK;
}

dat_status dat_model_create_preset(dat_model **out, dat_ctx *ctx, const char *name,
                                   const dat_model_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(name);
    dat_model_options o;
    dat_model_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_model_options, sizeof(dat_model_options));
        o = *opts;
    }
    DAT_TRY(check_options(&o));
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; ++i)
        if (strcmp(presets[i].name, name) == 0)
            p = &presets[i];
    if (!p)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "unknown preset '%.64s': expected mlp, cnn_small, preact_resnet18, "
                         "wrn_28_10 or resnet50",
                         name);
    net t = {.b = NULL, .status = DAT_OK};
    DAT_TRY(dat_model_builder_create(&t.b, ctx, o.in_channels ? o.in_channels : p->c,
                                     o.in_height ? o.in_height : p->h,
                                     o.in_width ? o.in_width : p->w));
    if (o.mean)
        t.status = dat_model_builder_set_normalization(t.b, o.mean, o.std);
    int32_t output = p->build(&t, o.num_classes ? o.num_classes : p->classes);
    dat_status s = t.status;
    if (s == DAT_OK)
        s = dat_model_builder_finish(t.b, output, o.init_seed, out);
    dat_model_builder_destroy(t.b);
    return s == DAT_OK ? DAT_OK : dat_error_context(s, name);
}
