/* test_filter.c - filter parsing and evaluation, both JSON forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

#include "check.h"

#define NIDS 6

static meta_table *table;

static rvf_meta_field fstr(const char *n, const char *s)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_STRING,
				      .u.str = { s, strlen(s) } } };
}

static rvf_meta_field fbytes(const char *n, const char *s)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_BYTES,
				      .u.str = { s, strlen(s) } } };
}

static rvf_meta_field fi64(const char *n, int64_t v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_I64, .u.i64 = v } };
}

static rvf_meta_field fu64(const char *n, uint64_t v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_U64, .u.u64 = v } };
}

static rvf_meta_field ff64(const char *n, double v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_F64, .u.f64 = v } };
}

static rvf_meta_field fbool(const char *n, bool v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_BOOL, .u.b = v } };
}

/* Field ids: color 0, n 1, i 2, x 3, flag 4, b 5.  Id 4 has no record,
 * id 6 has an empty-ish record (only "b"). */
static void build(void)
{
	rvf_meta_field f[] = {
		fstr("color", "red"), fu64("n", 5), fi64("i", -3), ff64("x", 2.5),
		fbool("flag", true),
		fstr("color", "blue"), fu64("n", 10), fi64("i", 7), ff64("x", 5.0),
		fbool("flag", false),
		fstr("color", "green"), fu64("n", 0),
		fstr("color", "red"), fbytes("b", "red"),
		fbytes("b", "zz"),
	};
	uint64_t ids[] = { 1, 2, 3, 4, 5, 6 };
	size_t st[] = { 0, 5, 10, 12, 12, 14, 15 };
	meta_write w = { 0 };
	rvf_error err;
	if (meta_encode_rows(NULL, NIDS, ids, f, st, 0, &w, &err) != RVF_OK) {
		fprintf(stderr, "build: %s\n", err.message);
		exit(1);
	}
	table = meta_table_ref(w.table);
	meta_write_release(&w);
}

#define BIT(id) (1u << (id))
#define ALL (BIT(1) | BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6))

/* The ids 1..6 matching json, or ~0u when it does not parse. */
static unsigned matches(const char *json)
{
	rvf_error err;
	rvf_filter *f = rvf_filter_parse(json, &err);
	if (!f) {
		fprintf(stderr, "  parse failed: %s: %s\n", json, err.message);
		return ~0u;
	}
	unsigned m = 0;
	for (uint64_t id = 1; id <= NIDS; id++)
		if (filter_match(f, table, id))
			m |= BIT(id);
	rvf_filter_free(f);
	return m;
}

#define MATCH(json, want)                                                   \
	do {                                                                \
		unsigned got_ = matches(json);                              \
		if (got_ != (want)) {                                       \
			fprintf(stderr, "%s:%d: %s matched 0x%x, want 0x%x\n", \
				__FILE__, __LINE__, json, got_, (unsigned)(want)); \
			failures++;                                         \
		}                                                           \
	} while (0)

/* Parsing must fail with RVF_E_FILTER and a message containing `what`. */
#define BAD(json, what)                                                     \
	do {                                                                \
		rvf_error e_;                                               \
		rvf_filter *f_ = rvf_filter_parse(json, &e_);               \
		if (f_ || e_.code != RVF_E_FILTER ||                        \
		    !strstr(e_.message, what) ||                            \
		    strncmp(e_.message, "filter: ", 8) != 0) {              \
			fprintf(stderr, "%s:%d: %s: want error \"%s\", got %s\n", \
				__FILE__, __LINE__, (const char *)(json), what, \
				f_ ? "a filter" : e_.message);              \
			failures++;                                         \
		}                                                           \
		rvf_filter_free(f_);                                        \
	} while (0)

static void test_reference_form(void)
{
	/* eq and exact types. */
	MATCH("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"string\",\"value\":\"red\"}",
	      BIT(1) | BIT(5));
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"5\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"+5\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"i64\",\"value\":\"5\"}", 0);
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"f64\",\"value\":\"5\"}", 0);
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"string\",\"value\":\"5\"}", 0);
	MATCH("{\"op\":\"eq\",\"fieldId\":2,\"valueType\":\"i64\",\"value\":\"-3\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"5\"}", BIT(2));
	MATCH("{\"op\":\"eq\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"0.25e1\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":4,\"valueType\":\"bool\",\"value\":\"true\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":4,\"valueType\":\"bool\",\"value\":\"false\"}", BIT(2));
	/* bytes never equal a string. */
	MATCH("{\"op\":\"eq\",\"fieldId\":5,\"valueType\":\"string\",\"value\":\"red\"}", 0);
	/* An unknown field id is a missing field. */
	MATCH("{\"op\":\"eq\",\"fieldId\":99,\"valueType\":\"u64\",\"value\":\"5\"}", 0);
	MATCH("{\"op\":\"ne\",\"fieldId\":99,\"valueType\":\"u64\",\"value\":\"5\"}", ALL);

	/* ne: true on a missing field, false on a type mismatch. */
	MATCH("{\"op\":\"ne\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"5\"}",
	      BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6));
	MATCH("{\"op\":\"ne\",\"fieldId\":1,\"valueType\":\"i64\",\"value\":\"5\"}",
	      BIT(4) | BIT(5) | BIT(6));
	MATCH("{\"op\":\"ne\",\"fieldId\":4,\"valueType\":\"bool\",\"value\":\"true\"}",
	      BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6));

	/* Orderings; missing fields never match. */
	MATCH("{\"op\":\"lt\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"10\"}",
	      BIT(1) | BIT(3));
	MATCH("{\"op\":\"le\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"10\"}",
	      BIT(1) | BIT(2) | BIT(3));
	MATCH("{\"op\":\"gt\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"0\"}",
	      BIT(1) | BIT(2));
	MATCH("{\"op\":\"ge\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"5\"}",
	      BIT(1) | BIT(2));
	MATCH("{\"op\":\"lt\",\"fieldId\":2,\"valueType\":\"i64\",\"value\":\"0\"}", BIT(1));
	MATCH("{\"op\":\"gt\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"2.5\"}", BIT(2));
	MATCH("{\"op\":\"lt\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"inf\"}",
	      BIT(1) | BIT(2));
	MATCH("{\"op\":\"lt\",\"fieldId\":0,\"valueType\":\"string\",\"value\":\"green\"}", BIT(2));
	MATCH("{\"op\":\"gt\",\"fieldId\":4,\"valueType\":\"bool\",\"value\":\"false\"}", BIT(1));

	/* in, range (half-open). */
	MATCH("{\"op\":\"in\",\"fieldId\":1,\"valueType\":\"u64\",\"values\":[\"0\",\"10\"]}",
	      BIT(2) | BIT(3));
	MATCH("{\"op\":\"in\",\"fieldId\":1,\"valueType\":\"u64\",\"values\":[]}", 0);
	MATCH("{\"op\":\"in\",\"fieldId\":0,\"valueType\":\"string\",\"values\":[\"red\",\"blue\"]}",
	      BIT(1) | BIT(2) | BIT(5));
	MATCH("{\"op\":\"range\",\"fieldId\":1,\"valueType\":\"u64\",\"low\":\"5\",\"high\":\"10\"}",
	      BIT(1));
	MATCH("{\"op\":\"range\",\"fieldId\":1,\"valueType\":\"u64\",\"low\":\"0\",\"high\":\"11\"}",
	      BIT(1) | BIT(2) | BIT(3));
	MATCH("{\"op\":\"range\",\"fieldId\":1,\"valueType\":\"i64\",\"low\":\"0\",\"high\":\"11\"}", 0);

	/* JSON numbers and bools as values. */
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":5}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":5.0}", BIT(1));
	MATCH("{\"op\":\"eq\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":5}", BIT(2));
	MATCH("{\"op\":\"eq\",\"fieldId\":4,\"valueType\":\"bool\",\"value\":true}", BIT(1));

	/* and, or, not. */
	MATCH("{\"op\":\"and\",\"children\":[]}", ALL);
	MATCH("{\"op\":\"or\",\"children\":[]}", 0);
	MATCH("{\"op\":\"not\",\"child\":{\"op\":\"eq\",\"fieldId\":0,"
	      "\"valueType\":\"string\",\"value\":\"red\"}}",
	      BIT(2) | BIT(3) | BIT(4) | BIT(6));
	MATCH("{\"op\":\"not\",\"child\":{\"op\":\"not\",\"child\":{\"op\":\"eq\","
	      "\"fieldId\":0,\"valueType\":\"string\",\"value\":\"red\"}}}",
	      BIT(1) | BIT(5));
	MATCH("{\"op\":\"and\",\"children\":["
	      "{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"string\",\"value\":\"red\"},"
	      "{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"5\"}]}",
	      BIT(1));
	MATCH("{\"op\":\"or\",\"children\":["
	      "{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"string\",\"value\":\"green\"},"
	      "{\"op\":\"eq\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"5\"}]}",
	      BIT(1) | BIT(3));
	/* not(eq) on a missing field: the reopen hazard matches everything. */
	MATCH("{\"op\":\"not\",\"child\":{\"op\":\"eq\",\"fieldId\":42,"
	      "\"valueType\":\"u64\",\"value\":\"1\"}}", ALL);
}

static void test_named_form(void)
{
	MATCH("{\"op\":\"eq\",\"field\":\"color\",\"value\":\"red\"}", BIT(1) | BIT(5));
	/* Numbers compare across i64/u64/f64. */
	MATCH("{\"op\":\"eq\",\"field\":\"n\",\"value\":5}", BIT(1));
	MATCH("{\"op\":\"eq\",\"field\":\"n\",\"value\":5.0}", BIT(1));
	MATCH("{\"op\":\"eq\",\"field\":\"x\",\"value\":5}", BIT(2));
	MATCH("{\"op\":\"lt\",\"field\":\"n\",\"value\":5.5}", BIT(1) | BIT(3));
	MATCH("{\"op\":\"gt\",\"field\":\"i\",\"value\":-3}", BIT(2));
	MATCH("{\"op\":\"ge\",\"field\":\"i\",\"value\":-3.0}", BIT(1) | BIT(2));
	MATCH("{\"op\":\"le\",\"field\":\"x\",\"value\":2.5}", BIT(1));
	/* A string never equals a number, bytes never a string. */
	MATCH("{\"op\":\"eq\",\"field\":\"n\",\"value\":\"5\"}", 0);
	MATCH("{\"op\":\"ne\",\"field\":\"n\",\"value\":\"5\"}", BIT(4) | BIT(5) | BIT(6));
	MATCH("{\"op\":\"eq\",\"field\":\"b\",\"value\":\"red\"}", 0);
	MATCH("{\"op\":\"eq\",\"field\":\"flag\",\"value\":true}", BIT(1));
	MATCH("{\"op\":\"eq\",\"field\":\"flag\",\"value\":1}", 0);
	/* Strings bytewise. */
	MATCH("{\"op\":\"ge\",\"field\":\"color\",\"value\":\"green\"}",
	      BIT(1) | BIT(3) | BIT(5));
	/* Missing field / unknown name. */
	MATCH("{\"op\":\"ne\",\"field\":\"color\",\"value\":\"red\"}",
	      BIT(2) | BIT(3) | BIT(4) | BIT(6));
	MATCH("{\"op\":\"ne\",\"field\":\"nope\",\"value\":1}", ALL);
	MATCH("{\"op\":\"eq\",\"field\":\"nope\",\"value\":1}", 0);
	MATCH("{\"op\":\"lt\",\"field\":\"nope\",\"value\":1}", 0);
	MATCH("{\"op\":\"in\",\"field\":\"nope\",\"values\":[1]}", 0);
	MATCH("{\"op\":\"range\",\"field\":\"nope\",\"low\":0,\"high\":9}", 0);
	/* in, range. */
	MATCH("{\"op\":\"in\",\"field\":\"color\",\"values\":[\"red\",\"green\"]}",
	      BIT(1) | BIT(3) | BIT(5));
	MATCH("{\"op\":\"in\",\"field\":\"n\",\"values\":[10.0,\"0\",0]}", BIT(2) | BIT(3));
	MATCH("{\"op\":\"in\",\"field\":\"n\",\"values\":[]}", 0);
	MATCH("{\"op\":\"range\",\"field\":\"i\",\"low\":-5,\"high\":7}", BIT(1));
	MATCH("{\"op\":\"range\",\"field\":\"i\",\"low\":-3,\"high\":7.5}", BIT(1) | BIT(2));
	MATCH("{\"op\":\"range\",\"field\":\"n\",\"low\":10,\"high\":10}", 0);
	/* valueType makes the named form exact too. */
	MATCH("{\"op\":\"eq\",\"field\":\"n\",\"valueType\":\"u64\",\"value\":\"5\"}", BIT(1));
	MATCH("{\"op\":\"eq\",\"field\":\"n\",\"valueType\":\"i64\",\"value\":\"5\"}", 0);
	/* Mixed forms in one tree. */
	MATCH("{\"op\":\"and\",\"children\":["
	      "{\"op\":\"eq\",\"field\":\"color\",\"value\":\"red\"},"
	      "{\"op\":\"not\",\"child\":{\"op\":\"eq\",\"fieldId\":5,"
	      "\"valueType\":\"string\",\"value\":\"x\"}}]}",
	      BIT(1) | BIT(5));
	MATCH("{\"op\":\"or\",\"children\":["
	      "{\"op\":\"eq\",\"field\":\"n\",\"value\":0},"
	      "{\"op\":\"eq\",\"fieldId\":2,\"valueType\":\"i64\",\"value\":\"7\"}]}",
	      BIT(2) | BIT(3));
}

static void test_errors(void)
{
	rvf_error err;
	CHECK(rvf_filter_parse(NULL, &err) == NULL && err.code == RVF_E_FILTER);
	CHECK(rvf_filter_parse("{\"op\":\"x\"}", NULL) == NULL);
	BAD("not json", "invalid JSON");
	BAD("", "invalid JSON");
	BAD("{\"op\":\"eq\"", "invalid JSON");
	BAD("[1]", "expected an object");
	BAD("{}", "missing \"op\"");
	BAD("{\"op\":5}", "\"op\" must be a string");
	BAD("{\"op\":\"equals\"}", "unknown op \"equals\"");
	BAD("{\"op\":\"eq\",\"value\":\"1\"}", "needs \"fieldId\" or \"field\"");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\"}", "\"eq\" needs \"value\"");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":\"abc\"}",
	    "not a valid u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":\"-1\"}",
	    "not a valid u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":\"18446744073709551616\"}",
	    "not a valid u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":\" 5\"}",
	    "not a valid u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":\"\"}",
	    "not a valid u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"i64\",\"value\":\"9223372036854775808\"}",
	    "not a valid i64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"f64\",\"value\":\"0x10\"}",
	    "not a valid f64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"f64\",\"value\":\"1.5x\"}",
	    "not a valid f64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"bool\",\"value\":\"yes\"}",
	    "not a valid bool");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"date\",\"value\":\"x\"}",
	    "unknown valueType \"date\"");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":5,\"value\":\"x\"}",
	    "\"valueType\" must be a string");
	BAD("{\"op\":\"eq\",\"fieldId\":-1,\"valueType\":\"u64\",\"value\":\"1\"}", "fieldId");
	BAD("{\"op\":\"eq\",\"fieldId\":65536,\"valueType\":\"u64\",\"value\":\"1\"}", "fieldId");
	BAD("{\"op\":\"eq\",\"fieldId\":\"1\",\"valueType\":\"u64\",\"value\":\"1\"}", "fieldId");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":5.5}",
	    "does not fit valueType u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":-1}",
	    "does not fit valueType u64");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"string\",\"value\":1}",
	    "does not fit valueType string");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"valueType\":\"u64\",\"value\":true}",
	    "does not fit valueType u64");
	BAD("{\"op\":\"in\",\"fieldId\":0,\"valueType\":\"u64\",\"values\":\"1\"}",
	    "\"values\" array");
	BAD("{\"op\":\"in\",\"fieldId\":0,\"valueType\":\"u64\",\"values\":[\"1\",\"x\"]}",
	    "not a valid u64");
	BAD("{\"op\":\"range\",\"fieldId\":0,\"valueType\":\"u64\",\"low\":\"1\"}",
	    "needs \"high\"");
	BAD("{\"op\":\"and\"}", "\"children\" array");
	BAD("{\"op\":\"or\",\"children\":{}}", "\"children\" array");
	BAD("{\"op\":\"and\",\"children\":[{\"op\":\"x\"}]}", "unknown op \"x\"");
	BAD("{\"op\":\"and\",\"children\":[1]}", "expected an object");
	BAD("{\"op\":\"not\",\"child\":[]}", "\"child\" object");
	BAD("{\"op\":\"not\"}", "\"child\" object");
	BAD("{\"op\":\"eq\",\"fieldId\":0,\"field\":\"a\",\"value\":1}", "both");
	BAD("{\"op\":\"eq\",\"field\":5,\"value\":1}", "\"field\" must be a string");
	BAD("{\"op\":\"eq\",\"field\":\"a\",\"value\":[1]}", "string, number or boolean");
	BAD("{\"op\":\"eq\",\"field\":\"a\",\"value\":null}", "string, number or boolean");

	/* Depth: 64 levels parse, 65 do not. */
	char buf[4096];
	for (int depth = 64; depth <= 65; depth++) {
		size_t n = 0;
		static const char open_not[] = "{\"op\":\"not\",\"child\":";
		static const char leaf[] = "{\"op\":\"and\",\"children\":[]}";
		for (int i = 1; i < depth; i++) {
			memcpy(buf + n, open_not, sizeof(open_not) - 1);
			n += sizeof(open_not) - 1;
		}
		memcpy(buf + n, leaf, sizeof(leaf) - 1);
		n += sizeof(leaf) - 1;
		for (int i = 1; i < depth; i++)
			buf[n++] = '}';
		buf[n] = '\0';
		rvf_filter *f = rvf_filter_parse(buf, &err);
		if (depth == 64) {
			CHECK(f != NULL);
			/* 63 nots over and[]: false. */
			CHECK(f && !filter_match(f, table, 1));
		} else {
			CHECK(f == NULL && err.code == RVF_E_FILTER &&
			      strstr(err.message, "deeper"));
		}
		rvf_filter_free(f);
	}
	/* Very deep JSON is refused without blowing the stack. */
	size_t deep = 100000;
	char *d = malloc(deep * 2 + 1);
	memset(d, '[', deep);
	memset(d + deep, ']', deep);
	d[deep * 2] = '\0';
	CHECK(rvf_filter_parse(d, &err) == NULL && err.code == RVF_E_FILTER);
	free(d);
}

static void test_edges(void)
{
	/* A NULL filter matches everything; a NULL table holds nothing. */
	CHECK(filter_match(NULL, table, 4));
	rvf_error err;
	rvf_filter *f = rvf_filter_parse(
		"{\"op\":\"ne\",\"field\":\"color\",\"value\":\"red\"}", &err);
	CHECK(f && filter_match(f, NULL, 1));
	CHECK(f && filter_match(f, meta_table_empty(), 1));
	rvf_filter_free(f);
	rvf_filter_free(NULL);
	/* Extreme numbers. */
	MATCH("{\"op\":\"lt\",\"fieldId\":1,\"valueType\":\"u64\",\"value\":\"18446744073709551615\"}",
	      BIT(1) | BIT(2) | BIT(3));
	MATCH("{\"op\":\"gt\",\"fieldId\":2,\"valueType\":\"i64\",\"value\":\"-9223372036854775808\"}",
	      BIT(1) | BIT(2));
	MATCH("{\"op\":\"lt\",\"field\":\"n\",\"value\":1e300}", BIT(1) | BIT(2) | BIT(3));
	MATCH("{\"op\":\"gt\",\"field\":\"i\",\"value\":-1e300}", BIT(1) | BIT(2));
	/* NaN compares with nothing, not even through ne. */
	MATCH("{\"op\":\"eq\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"NaN\"}", 0);
	MATCH("{\"op\":\"ne\",\"fieldId\":3,\"valueType\":\"f64\",\"value\":\"nan\"}",
	      BIT(3) | BIT(4) | BIT(5) | BIT(6));
	/* NUL inside strings is refused by the JSON parser; "" is a name. */
	BAD("{\"op\":\"eq\",\"field\":\"col\\u0000or\",\"value\":\"red\"}",
	    "invalid JSON");
	MATCH("{\"op\":\"eq\",\"field\":\"\",\"value\":\"red\"}", 0);
}

int main(void)
{
	build();
	test_reference_form();
	test_named_form();
	test_errors();
	test_edges();
	meta_table_unref(table);
	if (failures) {
		fprintf(stderr, "test_filter: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_filter: all checks passed\n");
	return 0;
}
