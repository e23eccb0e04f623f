/* replaced by the emulator sources */
typedef int flx_emu_placeholder_t;
