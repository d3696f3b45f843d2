/*
 * What the example main loop needs from a board: a fixed-rate sample tick, the front-end,
 * and a UART. Implement these for your MCU (an STM32 timer interrupt + DMA UART, an RP2040
 * repeating timer + stdio, ...). The tests build ecg_main.c against a host implementation.
 */
#ifndef ECG_HAL_H
#define ECG_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Board and front-end set-up; fills the rate, gain and channel count it configured. */
void hal_init(float *fs, float *uv_per_count, uint8_t *channels);
/* Block until the next sample tick of the fixed-rate timer; 0 to stop the loop. */
int hal_wait_tick(void);
/* Read one sample of every channel (counts relative to the ADC zero). */
void hal_read_frontend(int32_t *counts);
/* Non-zero while an electrode is off (AD8232 LO+/LO- pins, ADS1292R lead-off status). */
int hal_lead_off(void);
/* Queue bytes for the UART; returns how many were accepted (fewer if the queue is full). */
size_t hal_uart_write(const uint8_t *data, size_t len);
/* Bytes the host sent, without blocking; returns how many were copied. */
size_t hal_uart_read(uint8_t *data, size_t cap);

#endif /* ECG_HAL_H */
