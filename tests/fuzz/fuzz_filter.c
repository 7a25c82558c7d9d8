/* fuzz_filter.c - libFuzzer target: filter expressions.
 *
 * The input is a filter in either JSON form (rvf_filter_parse); when it
 * parses it is evaluated (filter_match, engine/filter.h) for ids 0..8
 * against a small metadata table (fields color string, n u64, i i64,
 * x f64, flag bool, b bytes; id 4 has no record, 6 only "b") and against
 * no table at all. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>

#include "filter.h"
#include "fuzz_common.h"

static meta_table *table;

static rvf_meta_field f_str(const char *n, const char *s, rvf_value_type t)
{
	return (rvf_meta_field){ n, { .type = t, .u.str = { s, strlen(s) } } };
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	rvf_meta_field f[] = {
		f_str("color", "red", RVF_VALUE_STRING),
		{ "n", { .type = RVF_VALUE_U64, .u.u64 = 5 } },
		{ "i", { .type = RVF_VALUE_I64, .u.i64 = -3 } },
		{ "x", { .type = RVF_VALUE_F64, .u.f64 = 2.5 } },
		{ "flag", { .type = RVF_VALUE_BOOL, .u.b = true } },
		f_str("color", "blue", RVF_VALUE_STRING),
		{ "n", { .type = RVF_VALUE_U64, .u.u64 = UINT64_MAX } },
		{ "i", { .type = RVF_VALUE_I64, .u.i64 = INT64_MIN } },
		{ "x", { .type = RVF_VALUE_F64, .u.f64 = -0.0 } },
		{ "flag", { .type = RVF_VALUE_BOOL, .u.b = false } },
		f_str("color", "gr\xc3\xa9n", RVF_VALUE_STRING),
		{ "n", { .type = RVF_VALUE_U64, .u.u64 = 0 } },
		f_str("color", "", RVF_VALUE_STRING),
		f_str("b", "red", RVF_VALUE_BYTES),
		f_str("b", "zz", RVF_VALUE_BYTES),
		{ "x", { .type = RVF_VALUE_F64, .u.f64 = 9007199254740993.0 } },
	};
	uint64_t ids[] = { 1, 2, 3, 4, 5, 6, 8 };
	size_t st[] = { 0, 5, 10, 12, 12, 14, 15, 16 };
	meta_write w = { 0 };
	rvf_error err;
	if (meta_encode_rows(NULL, 7, ids, f, st, 0, &w, &err) != RVF_OK) {
		fprintf(stderr, "fuzz_filter init: %s\n", err.message);
		exit(1);
	}
	table = meta_table_ref(w.table);
	meta_write_release(&w);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size + 1);
	if (!json)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	rvf_error err;
	rvf_filter *f = rvf_filter_parse(json, &err);
	if (f) {
		unsigned bits = 0;
		for (uint64_t id = 0; id <= 8; id++) {
			bits = bits << 1 | filter_match(f, table, id);
			bits = bits << 1 | filter_match(f, NULL, id);
		}
		fuzz_sink += bits;
		fuzz_note("parsed: matches %#x\n", bits);
		rvf_filter_free(f);
	} else {
		FUZZ_CHECK(err.code != RVF_OK);
		FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		fuzz_touch(err.message, strlen(err.message));
		fuzz_note("%s: %s\n", rvf_code_name(err.code), err.message);
	}
	free(json);
	return 0;
}
