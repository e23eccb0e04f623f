/* replaced by the quantization sources */
typedef int flx_quant_placeholder_t;
