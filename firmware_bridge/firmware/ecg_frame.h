/*
 * ecg-edge serial protocol v2: frame encoder, CRC and a small frame parser.
 * C99, no heap, no global state; the specification is docs/protocol.md.
 *
 * Frame (little-endian except the CRC):
 *   SYNC 0xEC 0x47 | VER u8 | TYPE u8 | LEN u16 | BODY (LEN bytes) | CRC u16 big-endian
 *   v1 BODY = SEQ u32 | PAYLOAD;  CRC-16/CCITT-FALSE over VER..end of BODY.
 */
#ifndef ECG_FRAME_H
#define ECG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ECG_SYNC0 0xECu
#define ECG_SYNC1 0x47u
#define ECG_VERSION 2u /* sent; v1 (CRC-16) frames are still parsed */
#define ECG_PREFIX_LEN 6u
#define ECG_CRC_LEN 4u /* v2: CRC-32; v1 had CRC-16 (2 bytes) */
#define ECG_MAX_BODY 1024u
#define ECG_MAX_FRAME (ECG_PREFIX_LEN + ECG_MAX_BODY + ECG_CRC_LEN)
#define ECG_MAX_CHANNELS 8u
#define ECG_MAX_FIRMWARE_ID 32u
#define ECG_MAX_STATUS_TEXT 64u
#define ECG_CRC_INIT 0xFFFFu

enum ecg_frame_type {
    ECG_TYPE_INFO = 0x01,
    ECG_TYPE_SAMPLES = 0x02,
    ECG_TYPE_STATUS = 0x03,
    ECG_TYPE_REQUEST = 0x10 /* host to device */
};

enum ecg_sample_format { ECG_FMT_INT16 = 1, ECG_FMT_INT24 = 2, ECG_FMT_INT32 = 3 };

enum ecg_flags { ECG_FLAG_LEAD_OFF = 0x01, ECG_FLAG_SATURATED = 0x02 };

enum ecg_status_code {
    ECG_STATUS_HEARTBEAT = 0,
    ECG_STATUS_BOOT = 1,
    ECG_STATUS_LEAD_OFF = 2,
    ECG_STATUS_LEAD_ON = 3,
    ECG_STATUS_OVERFLOW = 4, /* device dropped samples; SEQ still advanced over them */
    ECG_STATUS_END = 5
};

enum ecg_request { ECG_REQUEST_INFO = 0x01 };

typedef struct {
    float fs;            /* sample rate, Hz */
    float uv_per_count;  /* gain, microvolts per count */
    uint8_t channels;    /* 1..8 */
    uint8_t sample_format;
    uint8_t samples_per_frame;
    const char *firmware; /* NUL-terminated id, at most 32 bytes sent; may be NULL */
} ecg_info_t;

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): pass ECG_CRC_INIT to start. */
uint16_t ecg_crc16(uint16_t crc, const uint8_t *data, size_t len);
/* CRC-32 (IEEE, reflected 0xEDB88320, zlib's): start with 0, pass a result to continue. */
uint32_t ecg_crc32(uint32_t crc, const uint8_t *data, size_t len);
/* Bytes of a version's frame check: 2 for v1, 4 from v2 on. */
size_t ecg_crc_len(uint8_t version);

/* Bytes one sample of one channel takes in a format (0 for an unknown format). */
size_t ecg_format_width(uint8_t sample_format);

/* Encoders: write one whole frame into out[0..cap); return its length, or 0 when the
 * arguments break the v1 rules or cap is too small. Nothing is written past cap. */
size_t ecg_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t seq,
                        const uint8_t *payload, size_t payload_len);
/* samples: count x channels values, sample-major (s0c0 s0c1 s1c0 ...); values outside the
 * format are clipped and the frame gets ECG_FLAG_SATURATED. */
size_t ecg_encode_samples(uint8_t *out, size_t cap, uint32_t seq, uint8_t flags,
                          uint8_t sample_format, uint8_t channels, uint8_t count,
                          const int32_t *samples);
size_t ecg_encode_info(uint8_t *out, size_t cap, uint32_t seq, const ecg_info_t *info);
size_t ecg_encode_status(uint8_t *out, size_t cap, uint32_t seq, uint8_t flags, uint8_t code,
                         uint16_t detail, const char *text);
size_t ecg_encode_request(uint8_t *out, size_t cap, uint32_t seq, uint8_t what);

/* Parser (for the host's requests on the device; same resynchronisation rule as the host). */
typedef struct {
    uint8_t buf[ECG_MAX_FRAME];
    size_t len;
    size_t drop; /* bytes of the frame returned last, removed on the next call */
    uint32_t frames_ok;
    uint32_t crc_errors;
    uint32_t bad_length;
    uint32_t bytes_skipped;
} ecg_parser_t;

typedef struct {
    uint8_t version;
    uint8_t type;
    uint32_t seq;            /* v1 only */
    const uint8_t *payload;  /* v1: after SEQ; valid until the next parser call */
    size_t payload_len;
} ecg_frame_t;

void ecg_parser_init(ecg_parser_t *p);
/* Append received bytes; returns how many fit (call ecg_parser_next, then push the rest). */
size_t ecg_parser_push(ecg_parser_t *p, const uint8_t *data, size_t len);
/* 1 and *out filled when a CRC-checked frame is available, else 0 (need more bytes). */
int ecg_parser_next(ecg_parser_t *p, ecg_frame_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ECG_FRAME_H */
