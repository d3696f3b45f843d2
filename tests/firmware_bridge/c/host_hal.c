/*
 * Host implementation of ecg_hal.h, so the example firmware's main loop runs in the tests:
 * a deterministic two-channel "front-end", a UART that is stdout, a host that sends one info
 * request, a lead-off period and one moment where the UART queue is full.
 * Knobs (environment): ECG_HOST_TICKS samples to run (default 2000).
 */
#include <stdio.h>
#include <stdlib.h>

#include "ecg_frame.h"
#include "ecg_hal.h"

static long tick = -1;
static long ticks = 2000;

void hal_init(float *fs, float *uv_per_count, uint8_t *channels)
{
    const char *env = getenv("ECG_HOST_TICKS");
    if (env != NULL) {
        ticks = atol(env);
    }
    *fs = 250.0f;
    *uv_per_count = 2.5f;
    *channels = 2;
}

int hal_wait_tick(void)
{
    tick++;
    return tick < ticks;
}

/* The signal the Python test expects: see test_c_firmware.py::expected_counts. */
void hal_read_frontend(int32_t *counts)
{
    counts[0] = (int32_t)((tick * 37) % 2001) - 1000;
    counts[1] = (tick == 777) ? 40000 : -3 * counts[0];
}

int hal_lead_off(void)
{
    return tick >= 300 && tick < 350;
}

size_t hal_uart_write(const uint8_t *data, size_t len)
{
    if (tick == 509) {
        return 0; /* the UART queue is full for this frame: samples 500..509 never leave */
    }
    return fwrite(data, 1, len, stdout);
}

size_t hal_uart_read(uint8_t *data, size_t cap)
{
    if (tick == 119) {
        uint8_t req[16];
        size_t n = ecg_encode_request(req, sizeof req, 0, ECG_REQUEST_INFO);
        /* Some noise before it, so the parser must resynchronise. */
        size_t i = 0;
        if (cap < n + 3) {
            return 0;
        }
        data[i++] = 0x00;
        data[i++] = ECG_SYNC0;
        data[i++] = 0x13;
        for (size_t k = 0; k < n; k++) {
            data[i++] = req[k];
        }
        return i;
    }
    return 0;
}
