/*
 * Example front-end firmware: read the front-end at a fixed rate, pack frames, stream them.
 *
 * - Samples are gathered into one frame of ECG_SAMPLES_PER_FRAME; SEQ is the index of the
 *   frame's first sample since boot (mod 2^32), so the host counts lost samples exactly.
 * - If the UART cannot take a whole frame, the frame is dropped, not cut: SEQ still advances,
 *   so the host sees a gap of exactly that many samples, and an OVERFLOW status says why.
 * - Lead-off is a per-frame flag, and its changes are announced with a status frame.
 * - The info frame is sent at boot and whenever the host asks for it; its SEQ is the SEQ of
 *   the next samples frame.
 * No heap; every buffer is static and sized at compile time.
 */
#include "ecg_frame.h"
#include "ecg_hal.h"

#ifndef ECG_SAMPLES_PER_FRAME
#define ECG_SAMPLES_PER_FRAME 10
#endif
#ifndef ECG_CHANNELS_MAX
#define ECG_CHANNELS_MAX 2
#endif
#ifndef ECG_FIRMWARE_ID
#define ECG_FIRMWARE_ID "ecg-edge-ref/1"
#endif
#ifndef ECG_SAMPLE_FORMAT
#define ECG_SAMPLE_FORMAT ECG_FMT_INT16
#endif

static int32_t frame_counts[ECG_SAMPLES_PER_FRAME * ECG_CHANNELS_MAX];
static uint8_t tx[ECG_MAX_FRAME];
static ecg_parser_t rx;

static size_t send_frame(size_t len)
{
    /* All or nothing: a partial frame would only cost the host a CRC error. */
    return (len > 0 && hal_uart_write(tx, len) == len) ? len : 0;
}

static void serve_host(const ecg_info_t *info, uint32_t next_seq)
{
    uint8_t in[32];
    size_t got = hal_uart_read(in, sizeof in);
    size_t used = 0;
    ecg_frame_t f;
    while (used < got) {
        used += ecg_parser_push(&rx, in + used, got - used);
        while (ecg_parser_next(&rx, &f)) {
            if ((f.version == 1u || f.version == 2u) && f.type == ECG_TYPE_REQUEST && f.payload_len == 1
                && f.payload[0] == ECG_REQUEST_INFO) {
                send_frame(ecg_encode_info(tx, sizeof tx, next_seq, info));
            }
        }
    }
}

int main(void)
{
    ecg_info_t info;
    uint8_t channels = 1;
    uint32_t seq = 0;       /* index of the first sample of the frame being filled */
    uint8_t filled = 0;
    uint8_t flags = 0;
    int was_off = 0;
    uint16_t dropped_frames = 0;

    hal_init(&info.fs, &info.uv_per_count, &channels);
    if (channels == 0 || channels > ECG_CHANNELS_MAX) {
        channels = 1;
    }
    info.channels = channels;
    info.sample_format = ECG_SAMPLE_FORMAT;
    info.samples_per_frame = ECG_SAMPLES_PER_FRAME;
    info.firmware = ECG_FIRMWARE_ID;
    ecg_parser_init(&rx);
    send_frame(ecg_encode_info(tx, sizeof tx, seq, &info));

    while (hal_wait_tick()) {
        int off = hal_lead_off() != 0;
        if (off != was_off) {
            /* SEQ of a status is that of the next samples frame: the one being filled. */
            was_off = off;
            send_frame(ecg_encode_status(tx, sizeof tx, seq,
                                         off ? ECG_FLAG_LEAD_OFF : 0,
                                         off ? ECG_STATUS_LEAD_OFF : ECG_STATUS_LEAD_ON, 0,
                                         NULL));
        }
        hal_read_frontend(&frame_counts[(size_t)filled * channels]);
        if (off) {
            flags |= ECG_FLAG_LEAD_OFF;
        }
        filled++;
        if (filled == ECG_SAMPLES_PER_FRAME) {
            size_t len = ecg_encode_samples(tx, sizeof tx, seq, flags, ECG_SAMPLE_FORMAT,
                                            channels, filled, frame_counts);
            if (send_frame(len) == 0) {
                dropped_frames++;
            } else if (dropped_frames > 0) {
                send_frame(ecg_encode_status(tx, sizeof tx, seq + filled, 0,
                                             ECG_STATUS_OVERFLOW, dropped_frames, NULL));
                dropped_frames = 0;
            }
            seq += filled;
            filled = 0;
            flags = 0;
        }
        serve_host(&info, seq);
    }
    return 0;
}
