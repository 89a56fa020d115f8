/* dat.h must compile as strict C11 with every warning an error. */
#include <libdat/dat.h>

int main(void)
{
    dat_ctx_options o;
    return dat_ctx_options_init(&o) == DAT_OK && o.size == sizeof o ? 0 : 1;
}
