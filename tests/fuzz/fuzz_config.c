/* libFuzzer target for the config loader: any bytes in, errors or a config
 * out, everything freed, no crash, no leak. */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs;

    cfg_load_buffer("fuzz/tunneld.yaml", (const char *)data, size, &cfg, &errs);
    cfg_free(cfg);
    cfg_errors_free(&errs);
    return 0;
}
