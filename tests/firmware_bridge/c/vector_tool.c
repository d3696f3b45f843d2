/*
 * Test driver for the C reference encoder/parser: one command per stdin line, one answer
 * per stdout line, so the Python tests can compare both implementations on shared vectors.
 *
 *   crc HEX                                   -> CRC-16 as 4 hex digits
 *   crc32 HEX                                 -> CRC-32 as 8 hex digits
 *   samples SEQ FLAGS FMT CH COUNT V...       -> frame hex
 *   info SEQ FS UV CH FMT SPF FIRMWARE|-      -> frame hex
 *   status SEQ FLAGS CODE DETAIL TEXT|-       -> frame hex
 *   request SEQ WHAT                          -> frame hex
 *   parse HEX                                 -> "frame VER TYPE SEQ PAYLOADHEX" per frame, then
 *                                                "end FRAMES CRC_ERRORS BAD_LENGTH SKIPPED PENDING"
 * Anything after " = " on a line (the expected answer in vectors.txt) is ignored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecg_frame.h"

#define MAX_HEX 1000000

static char line[2 * MAX_HEX + 64];
static uint8_t bytes[MAX_HEX];
static uint8_t out[ECG_MAX_FRAME];
static int32_t values[255 * ECG_MAX_CHANNELS];
static ecg_parser_t parser;

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
}

static size_t from_hex(const char *s, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    unsigned int v;
    while (s[0] && s[1] && n < cap && sscanf(s, "%2x", &v) == 1) {
        dst[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static const char *text_arg(char *tok)
{
    return (tok == NULL || strcmp(tok, "-") == 0) ? NULL : tok;
}

static void answer(size_t n)
{
    if (n == 0) {
        printf("error\n");
    } else {
        print_hex(out, n);
        printf("\n");
    }
}

int main(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *eq = strstr(line, " = ");
        char *cmd, *tok;
        if (eq != NULL) {
            *eq = '\0';
        }
        line[strcspn(line, "\r\n")] = '\0';
        cmd = strtok(line, " ");
        if (cmd == NULL || cmd[0] == '#') {
            continue;
        }
        if (strcmp(cmd, "crc32") == 0) {
            tok = strtok(NULL, " ");
            size_t n = tok ? from_hex(tok, bytes, sizeof bytes) : 0;
            printf("%08lx\n", (unsigned long)ecg_crc32(0u, bytes, n));
        } else if (strcmp(cmd, "crc") == 0) {
            tok = strtok(NULL, " ");
            size_t n = tok ? from_hex(tok, bytes, sizeof bytes) : 0;
            printf("%04x\n", ecg_crc16(ECG_CRC_INIT, bytes, n));
        } else if (strcmp(cmd, "samples") == 0) {
            uint32_t seq = (uint32_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t flags = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t fmt = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t ch = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t count = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            size_t i, n = (size_t)ch * count;
            for (i = 0; i < n && i < sizeof values / sizeof values[0]; i++) {
                tok = strtok(NULL, " ");
                values[i] = tok ? (int32_t)strtoll(tok, NULL, 0) : 0;
            }
            answer(ecg_encode_samples(out, sizeof out, seq, flags, fmt, ch, count, values));
        } else if (strcmp(cmd, "info") == 0) {
            ecg_info_t info;
            uint32_t seq = (uint32_t)strtoul(strtok(NULL, " "), NULL, 0);
            info.fs = (float)strtod(strtok(NULL, " "), NULL);
            info.uv_per_count = (float)strtod(strtok(NULL, " "), NULL);
            info.channels = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            info.sample_format = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            info.samples_per_frame = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            info.firmware = text_arg(strtok(NULL, " "));
            answer(ecg_encode_info(out, sizeof out, seq, &info));
        } else if (strcmp(cmd, "status") == 0) {
            uint32_t seq = (uint32_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t flags = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t code = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint16_t detail = (uint16_t)strtoul(strtok(NULL, " "), NULL, 0);
            const char *text = text_arg(strtok(NULL, " "));
            answer(ecg_encode_status(out, sizeof out, seq, flags, code, detail, text));
        } else if (strcmp(cmd, "request") == 0) {
            uint32_t seq = (uint32_t)strtoul(strtok(NULL, " "), NULL, 0);
            uint8_t what = (uint8_t)strtoul(strtok(NULL, " "), NULL, 0);
            answer(ecg_encode_request(out, sizeof out, seq, what));
        } else if (strcmp(cmd, "parse") == 0) {
            ecg_frame_t f;
            size_t n, used = 0;
            tok = strtok(NULL, " ");
            n = tok ? from_hex(tok, bytes, sizeof bytes) : 0;
            ecg_parser_init(&parser);
            while (used < n) {
                used += ecg_parser_push(&parser, bytes + used, n - used);
                while (ecg_parser_next(&parser, &f)) {
                    printf("frame %u %u %lu ", f.version, f.type, (unsigned long)f.seq);
                    print_hex(f.payload, f.payload_len);
                    printf("\n");
                }
            }
            while (ecg_parser_next(&parser, &f)) {
                printf("frame %u %u %lu ", f.version, f.type, (unsigned long)f.seq);
                print_hex(f.payload, f.payload_len);
                printf("\n");
            }
            printf("end %lu %lu %lu %lu %lu\n", (unsigned long)parser.frames_ok,
                   (unsigned long)parser.crc_errors, (unsigned long)parser.bad_length,
                   (unsigned long)parser.bytes_skipped, (unsigned long)parser.len);
        } else {
            printf("error unknown command %s\n", cmd);
        }
        fflush(stdout);
    }
    return 0;
}
