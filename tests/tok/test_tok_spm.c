/* SentencePiece-style vocabulary (stories260K, tok512.bin built into an
 * flx_vocab_desc here): llama2.c's example, the greedy reference text, a
 * slow llama2.c encoder on TinyStories paragraphs, byte fallback, decode. */
#include "tok_spm_util.h"

#include <math.h>

Test(tok_spm, once_upon_a_time_and_reference_text)
{
    tok512 v;
    tok512_read(&v);
    flx_tokenizer *t = tok512_tokenizer(&v);
    cr_assert_eq(flx_tokenizer_get_kind(t), FLX_TOK_SPM);
    cr_assert_eq(flx_tokenizer_adds_bos(t), 1);
    static const int32_t once[] = {1, 403, 407, 261, 378};
    tok_expect(t, "Once upon a time", 16, 1, 0, once, 5, "Once upon a time");
    tok_expect(t, "Once upon a time", 16, 0, 0, once + 1, 4, "without BOS");

    /* the 201 reference ids (BOS + 200 greedy tokens) decode to the reference text */
    size_t ids_bytes, txt_bytes;
    char *ids_txt = tok_read_data("stories260K/expected_greedy_n200.ids.txt", &ids_bytes);
    char *expect = tok_read_data("stories260K/expected_greedy_n200.txt", &txt_bytes);
    int32_t ids[256];
    size_t n = 0;
    for (char *s = strtok(ids_txt, " \n"); s; s = strtok(NULL, " \n")) ids[n++] = atoi(s);
    cr_assert_eq(n, 201);
    cr_assert_eq(ids[0], 1);
    char *text = NULL;
    size_t bytes = 0;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_decode(t, ids, n, &text, &bytes, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(bytes, txt_bytes);
    cr_assert(!memcmp(text, expect, bytes), "decoded:\n%s", text);
    free(text);
    /* the prefix space is dropped only right after BOS */
    char buf[16];
    cr_assert_eq(flx_tokenizer_piece(t, 1, 403, buf, sizeof buf), 4);
    cr_assert(!memcmp(buf, "Once", 4));
    cr_assert_eq(flx_tokenizer_piece(t, 261, 403, buf, sizeof buf), 5);
    cr_assert(!memcmp(buf, " Once", 5));
    cr_assert_eq(flx_tokenizer_piece(t, -1, 13, buf, sizeof buf), 1);   /* <0x0A> */
    cr_assert_eq(buf[0], '\n');
    cr_assert_eq(flx_tokenizer_piece(t, -1, 1, buf, sizeof buf), 0);    /* BOS: no text */
    free(ids_txt);
    free(expect);
    flx_tokenizer_free(t);
    tok512_free(&v);
}

Test(tok_spm, matches_slow_llama2c_encoder)
{
    tok512 v;
    tok512_read(&v);
    flx_tokenizer *t = tok512_tokenizer(&v);
    tok512_check_paragraphs(t, &v, 300);
    flx_tokenizer_free(t);
    tok512_free(&v);
}

Test(tok_spm, byte_fallback_and_odd_input)
{
    tok512 v;
    tok512_read(&v);
    flx_tokenizer *t = tok512_tokenizer(&v);
    int32_t space = tok512_find(&v, " ", 1);
    cr_assert_geq(space, 259);
    /* a character outside the 512 pieces falls back to its UTF-8 bytes */
    cr_assert_lt(tok512_find(&v, "\xE6\x97\xA5", 3), 0);
    const int32_t nichi[] = {1, space, 0xE6 + 3, 0x97 + 3, 0xA5 + 3};
    tok_expect(t, "\xE6\x97\xA5", 3, 1, 0, nichi, 5, "U+65E5");
    tok_round_trip(t, "\xE6\x97\xA5 and \xC3\xA9", 9, 1, "non-ASCII");
    /* invalid UTF-8 bytes are byte tokens too; nothing is lost */
    tok_round_trip(t, "a\xFF\xC0\xAF b\xED\xA0\x80", 9, 1, "invalid UTF-8");
    /* empty text: BOS only, no dummy prefix */
    const int32_t bos[] = {1};
    tok_expect(t, "", 0, 1, 0, bos, 1, "empty");
    /* control tokens only with parse_special; text after one gets a prefix space */
    const int32_t special[] = {1, 403};
    tok_expect(t, "<s>Once", 7, 0, 1, special, 2, "parse_special");
    int32_t *ids = NULL;
    size_t n = 0;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_encode(t, "<s>", 3, 0, 0, &ids, &n, &err), FLX_OK);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], 1);
    free(ids);
    flx_tokenizer_free(t);
    tok512_free(&v);
}

Test(tok_spm, bad_descriptions)
{
    tok512 v;
    tok512_read(&v);
    flx_vocab_desc d = {
        .kind = FLX_TOK_SPM, .n_tokens = TOK512_N, .tokens = (const char *const *)v.gguf,
        .scores = v.scores, .token_types = v.types, .bos_id = 1, .eos_id = 2, .unk_id = 0,
    };
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    d.scores = NULL;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "scores"), "%s", err.msg);
    d.scores = v.scores;
    d.bos_id = 512;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "bos_id 512"), "%s", err.msg);
    d.bos_id = 1;
    v.types[300] = 9;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "token_types[300]"), "%s", err.msg);
    v.types[300] = FLX_TOKEN_BYTE;   /* a byte token that does not read <0xNN> */
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokens[300]"), "%s", err.msg);
    v.types[300] = FLX_TOKEN_NORMAL;
    v.scores[300] = NAN;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "scores[300]"), "%s", err.msg);
    cr_assert_null(t);
    tok512_free(&v);
}
