/* info_flxq.h -- `flxemu info` on a quantized .flxq file. */
#ifndef FLX_INFO_FLXQ_H
#define FLX_INFO_FLXQ_H

/* Prints the file's recipe, rotation, config, tokenizer and provenance
 * (and writes them as JSON to json_path when not NULL); returns an exit
 * status. */
int flx_info_flxq(const char *path, const char *json_path);

#endif
