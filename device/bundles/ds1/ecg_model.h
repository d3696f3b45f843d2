#ifndef ECG_MODEL_H_
#define ECG_MODEL_H_

extern const unsigned char ecg_model[];
extern const unsigned int ecg_model_len;

#endif  // ECG_MODEL_H_
