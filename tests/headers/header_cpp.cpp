// dat.h must compile as C++17 with every warning an error, and link from C++.
#include <libdat/dat.h>

int main()
{
    dat_ctx_options o{};
    if (dat_ctx_options_init(&o) != DAT_OK || o.size != sizeof o)
        return 1;
    dat_ctx *ctx = nullptr;
    if (dat_ctx_create(&ctx, &o) != DAT_OK)
        return 1;
    dat_ctx_destroy(ctx);
    return 0;
}
