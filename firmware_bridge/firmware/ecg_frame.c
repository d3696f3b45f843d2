/* ecg-edge serial protocol v2 (reads v1): encoder, CRC, parser. C99, no heap. See ecg_frame.h. */
#include "ecg_frame.h"

#include <string.h>

uint16_t ecg_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint32_t ecg_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
    }
    return ~crc;
}

size_t ecg_crc_len(uint8_t version)
{
    return version == 1u ? 2u : 4u;
}

static int known_version(uint8_t version)
{
    return version == 1u || version == 2u;
}

size_t ecg_format_width(uint8_t sample_format)
{
    switch (sample_format) {
    case ECG_FMT_INT16: return 2;
    case ECG_FMT_INT24: return 3;
    case ECG_FMT_INT32: return 4;
    default: return 0;
    }
}

static void put_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static void put_f32le(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u); /* IEEE-754 binary32, as on every supported MCU */
    put_u32le(p, u);
}

/* Prefix + SEQ for a body of body_len bytes; the caller writes the payload after it. */
static void put_head(uint8_t *out, uint8_t type, uint32_t seq, size_t body_len)
{
    out[0] = ECG_SYNC0;
    out[1] = ECG_SYNC1;
    out[2] = ECG_VERSION;
    out[3] = type;
    put_u16le(out + 4, (uint16_t)body_len);
    put_u32le(out + ECG_PREFIX_LEN, seq);
}

/* CRC-32 over VER..end of body, appended big-endian; returns the frame length. */
static size_t finish(uint8_t *out, size_t body_len)
{
    size_t end = ECG_PREFIX_LEN + body_len;
    uint32_t crc = ecg_crc32(0u, out + 2, end - 2);
    out[end] = (uint8_t)(crc >> 24);
    out[end + 1] = (uint8_t)((crc >> 16) & 0xFFu);
    out[end + 2] = (uint8_t)((crc >> 8) & 0xFFu);
    out[end + 3] = (uint8_t)(crc & 0xFFu);
    return end + ECG_CRC_LEN;
}

/* Length of a NUL-terminated string, at most max (NULL counts as empty). */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;

    if (s != NULL) {
        while (n < max && s[n] != '\0') {
            n++;
        }
    }
    return n;
}

static int fits(size_t payload_len, size_t cap)
{
    size_t body = 4u + payload_len;
    return body <= ECG_MAX_BODY && ECG_PREFIX_LEN + body + ECG_CRC_LEN <= cap;
}

size_t ecg_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t seq,
                        const uint8_t *payload, size_t payload_len)
{
    if (out == NULL || !fits(payload_len, cap) || (payload_len > 0 && payload == NULL)) {
        return 0;
    }
    put_head(out, type, seq, 4u + payload_len);
    if (payload_len > 0) {
        memcpy(out + ECG_PREFIX_LEN + 4u, payload, payload_len);
    }
    return finish(out, 4u + payload_len);
}

size_t ecg_encode_samples(uint8_t *out, size_t cap, uint32_t seq, uint8_t flags,
                          uint8_t sample_format, uint8_t channels, uint8_t count,
                          const int32_t *samples)
{
    size_t width = ecg_format_width(sample_format);
    size_t n = (size_t)count * channels;
    size_t payload_len = 4u + n * width;
    int32_t lo, hi;
    size_t i, b;
    uint8_t *p;

    if (out == NULL || samples == NULL || width == 0 || count == 0 || channels == 0 ||
        channels > ECG_MAX_CHANNELS || !fits(payload_len, cap)) {
        return 0;
    }
    lo = (sample_format == ECG_FMT_INT16) ? -32768 : (sample_format == ECG_FMT_INT24)
         ? -8388608 : INT32_MIN;
    hi = (sample_format == ECG_FMT_INT16) ? 32767 : (sample_format == ECG_FMT_INT24)
         ? 8388607 : INT32_MAX;
    put_head(out, ECG_TYPE_SAMPLES, seq, 4u + payload_len);
    p = out + ECG_PREFIX_LEN + 4u;
    p[1] = sample_format;
    p[2] = channels;
    p[3] = count;
    p += 4;
    for (i = 0; i < n; i++) {
        int32_t v = samples[i];
        uint32_t u;
        if (v < lo) {
            v = lo;
            flags |= ECG_FLAG_SATURATED;
        } else if (v > hi) {
            v = hi;
            flags |= ECG_FLAG_SATURATED;
        }
        u = (uint32_t)v; /* two's complement bytes, little-endian */
        for (b = 0; b < width; b++) {
            *p++ = (uint8_t)((u >> (8u * b)) & 0xFFu);
        }
    }
    out[ECG_PREFIX_LEN + 4u] = flags;
    return finish(out, 4u + payload_len);
}

size_t ecg_encode_info(uint8_t *out, size_t cap, uint32_t seq, const ecg_info_t *info)
{
    size_t fw_len;
    size_t payload_len;
    uint8_t *p;

    if (out == NULL || info == NULL || info->channels == 0 || info->channels > ECG_MAX_CHANNELS
        || ecg_format_width(info->sample_format) == 0 || !(info->fs > 0.0f)
        || !(info->uv_per_count > 0.0f)) {
        return 0;
    }
    fw_len = bounded_len(info->firmware, ECG_MAX_FIRMWARE_ID);
    payload_len = 12u + fw_len;
    if (!fits(payload_len, cap)) {
        return 0;
    }
    put_head(out, ECG_TYPE_INFO, seq, 4u + payload_len);
    p = out + ECG_PREFIX_LEN + 4u;
    put_f32le(p, info->fs);
    put_f32le(p + 4, info->uv_per_count);
    p[8] = info->channels;
    p[9] = info->sample_format;
    p[10] = info->samples_per_frame;
    p[11] = 0;
    if (fw_len > 0) {
        memcpy(p + 12, info->firmware, fw_len);
    }
    return finish(out, 4u + payload_len);
}

size_t ecg_encode_status(uint8_t *out, size_t cap, uint32_t seq, uint8_t flags, uint8_t code,
                         uint16_t detail, const char *text)
{
    size_t text_len;
    size_t payload_len;
    uint8_t *p;

    if (out == NULL) {
        return 0;
    }
    text_len = bounded_len(text, ECG_MAX_STATUS_TEXT);
    payload_len = 4u + text_len;
    if (!fits(payload_len, cap)) {
        return 0;
    }
    put_head(out, ECG_TYPE_STATUS, seq, 4u + payload_len);
    p = out + ECG_PREFIX_LEN + 4u;
    p[0] = flags;
    p[1] = code;
    put_u16le(p + 2, detail);
    if (text_len > 0) {
        memcpy(p + 4, text, text_len);
    }
    return finish(out, 4u + payload_len);
}

size_t ecg_encode_request(uint8_t *out, size_t cap, uint32_t seq, uint8_t what)
{
    return ecg_encode_frame(out, cap, ECG_TYPE_REQUEST, seq, &what, 1u);
}

/* ---- parser ------------------------------------------------------------------------- */

void ecg_parser_init(ecg_parser_t *p)
{
    memset(p, 0, sizeof *p);
}

static void discard(ecg_parser_t *p, size_t n)
{
    if (n >= p->len) {
        p->len = 0;
        return;
    }
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
}

size_t ecg_parser_push(ecg_parser_t *p, const uint8_t *data, size_t len)
{
    size_t room;
    if (p->drop > 0) {
        discard(p, p->drop);
        p->drop = 0;
    }
    room = sizeof p->buf - p->len;
    if (len > room) {
        len = room;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return len;
}

int ecg_parser_next(ecg_parser_t *p, ecg_frame_t *out)
{
    if (p->drop > 0) {
        discard(p, p->drop);
        p->drop = 0;
    }
    for (;;) {
        size_t i = 0, body_len, total, clen;
        uint32_t crc, sent;
        size_t k;
        /* Find the sync word; a lone first sync byte at the end may be completed later. */
        while (i + 1 < p->len && !(p->buf[i] == ECG_SYNC0 && p->buf[i + 1] == ECG_SYNC1)) {
            i++;
        }
        if (i + 1 >= p->len) {
            size_t keep = (p->len > 0 && p->buf[p->len - 1] == ECG_SYNC0) ? 1u : 0u;
            p->bytes_skipped += (uint32_t)(p->len - keep);
            discard(p, p->len - keep);
            return 0;
        }
        p->bytes_skipped += (uint32_t)i;
        discard(p, i);
        if (p->len < ECG_PREFIX_LEN) {
            return 0;
        }
        body_len = (size_t)p->buf[4] | ((size_t)p->buf[5] << 8);
        if (body_len > ECG_MAX_BODY || (known_version(p->buf[2]) && body_len < 4u)) {
            p->bad_length++;
            p->bytes_skipped++;
            discard(p, 1);
            continue;
        }
        clen = ecg_crc_len(p->buf[2]);
        total = ECG_PREFIX_LEN + body_len + clen;
        if (p->len < total) {
            return 0;
        }
        crc = (clen == 2u) ? ecg_crc16(ECG_CRC_INIT, p->buf + 2, ECG_PREFIX_LEN + body_len - 2)
                           : ecg_crc32(0u, p->buf + 2, ECG_PREFIX_LEN + body_len - 2);
        sent = 0;
        for (k = total - clen; k < total; k++) {
            sent = (sent << 8) | p->buf[k];
        }
        if (crc != sent) {
            p->crc_errors++;
            p->bytes_skipped++;
            discard(p, 1);
            continue;
        }
        out->version = p->buf[2];
        out->type = p->buf[3];
        out->seq = 0;
        out->payload = p->buf + ECG_PREFIX_LEN;
        out->payload_len = body_len;
        if (known_version(out->version)) {
            out->seq = (uint32_t)p->buf[6] | ((uint32_t)p->buf[7] << 8) |
                       ((uint32_t)p->buf[8] << 16) | ((uint32_t)p->buf[9] << 24);
            out->payload = p->buf + ECG_PREFIX_LEN + 4u;
            out->payload_len = body_len - 4u;
        }
        p->frames_ok++;
        p->drop = total;
        return 1;
    }
}
