/* rvfctl verify: every check the file allows, each named in the report.
 *
 * Content hashes, the manifest chain, the witness chain, a branch's parent
 * hash (opening a branch child checks it against its parent) and the
 * signatures (with --pubkey: at least one by that key).  A mount point is
 * verified through the store file it mounts, opened read-only like any
 * reader: the daemon's commits are atomic, so it sees one committed state. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

typedef struct report {
	json_t *checks;         /* [{check, ok, detail}] */
	bool ok;
	char first[700];        /* the first failure */
} report;

static void add(report *r, const char *check, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add(report *r, const char *check, bool ok, const char *fmt, ...)
{
	char detail[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	json_array_append_new(r->checks, json_pack("{s:s,s:b,s:s}", "check", check,
						   "ok", ok, "detail", detail));
	if (!ok && r->ok) {
		snprintf(r->first, sizeof(r->first), "%s: %s", check, detail);
		r->ok = false;
	}
}

static json_t *signature_json(const rvf_signature_check *c)
{
	return json_pack("{s:I,s:i,s:o,s:i,s:i,s:b,s:b,s:s}",
			 "offset", (json_int_t)c->offset, "epoch", (int)c->epoch,
			 "publicKey", json_hex(c->public_key, 32),
			 "covered", (int)c->covered, "uncovered", (int)c->uncovered,
			 "ok", c->ok, "trusted", c->trusted, "problem", c->problem);
}

static void check_signatures(report *r, const rvf_view *v, const uint8_t *pk,
			     json_t *sigs)
{
	rvf_signature_check *checks;
	size_t n;
	rvf_error err;
	rvf_code rc = rvf_view_verify_signatures(v, pk, &checks, &n, &err);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(sigs, signature_json(&checks[i]));
	size_t trusted = 0, uncovered = 0;
	for (size_t i = 0; i < n; i++) {
		if (checks[i].trusted && checks[i].ok) {
			trusted++;
			uncovered = checks[i].uncovered;
		}
	}
	if (rc != RVF_OK)
		add(r, "signatures", false, "%s", err.message);
	else if (!n)
		add(r, "signatures", true, "none (unsigned store)");
	else if (!pk)
		add(r, "signatures", true,
		    "%zu valid, made with the keys they carry (give --pubkey to check who signed)", n);
	else
		add(r, "signatures", true,
		    "%zu valid, %zu by the given key; %zu segments committed after the newest of those are not covered",
		    n, trusted, uncovered);
	free(checks);
}

/* The checks of an opened store: hashes, the manifest and witness chains,
 * the parent, the signatures. */
static void verify_view(report *r, const rvf_view *v, const uint8_t *pk, json_t *sigs)
{
	const rvf_info *i = rvf_view_info(v);
	rvf_error err;
	add(r, "open", true, "epoch %u, %llu vectors", i->epoch,
	    (unsigned long long)i->visible);
	if (rvf_view_verify_hashes(v, &err) != RVF_OK)
		add(r, "hashes", false, "%s", err.message);
	else
		add(r, "hashes", true, "%zu segments", rvf_view_segment_count(v));
	rvf_chain_report cr;
	rvf_code rc = rvf_view_verify_chains(v, &cr, &err);
	if (cr.manifests_bad)
		add(r, "manifests", false, "%s", err.message);
	else
		add(r, "manifests", true, "%u older manifests listed, all parse, none newer",
		    cr.manifests);
	if (cr.witness_breaks)
		add(r, "witnesses", false, "%u of %u entries break the chain; first: %s",
		    cr.witness_breaks, cr.witnesses,
		    cr.manifests_bad ? "(see manifests)" : err.message);
	else
		add(r, "witnesses", true, "%u entries: %u start a writer session, the others carry their predecessor's hash",
		    cr.witnesses, cr.witness_sessions);
	if (rc == RVF_E_NO_MEMORY)
		add(r, "chains", false, "out of memory");
	if (i->is_branch && i->parent_as_of < i->parent_size)
		add(r, "parent", true, "parent %s matches the recorded parent hash as of byte %llu of %llu: it changed since the branch was made, and this child reads it as it was then (the reference refuses such a child: ParentHashMismatch)",
		    i->parent_resolved ? i->parent_resolved : i->parent_path,
		    (unsigned long long)i->parent_as_of,
		    (unsigned long long)i->parent_size);
	else if (i->is_branch)
		add(r, "parent", true, "parent %s matches the recorded parent hash",
		    i->parent_resolved ? i->parent_resolved : i->parent_path);
	else if (i->identity.lineage_depth)
		add(r, "parent", true, "derived store: the parent is not recorded by path, so its hash cannot be rechecked");
	check_signatures(r, v, pk, sigs);
}

static void print_checks(json_t *checks)
{
	size_t k;
	json_t *ch;
	json_array_foreach(checks, k, ch)
		printf("%-4s  %-10s %s\n",
		       json_is_true(json_object_get(ch, "ok")) ? "ok" : "FAIL",
		       json_string_value(json_object_get(ch, "check")),
		       json_string_value(json_object_get(ch, "detail")));
}

/* One STORE (a file or a mount point): its report, its exit code. */
static int verify_one(ctl_ctx *ctx, const char *arg, const uint8_t *pk)
{
	char *mounted_file = NULL;
	if (mnt_detect(arg) && !(mounted_file = mnt_store_path(arg)))
		return ctl_fail(ctx, EXIT_OTHER, NULL,
				"%s: cannot find the store file of this mount in /proc/self/mountinfo",
				arg);
	const char *path = mounted_file ? mounted_file : arg;

	report r = { .checks = json_array(), .ok = true };
	json_t *sigs = json_array();
	rvf_store *s = NULL;
	rvf_error err;
	rvf_code rc = rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, &err);
	int exit_code = 0;
	if (rc != RVF_OK) {
		/* A refused open is a verification failure; a missing or
		 * forbidden path is what it is everywhere in rvfctl (exit 1),
		 * an unreadable file an I/O error. */
		add(&r, rc == RVF_E_PARENT_HASH_MISMATCH ? "parent" : "open", false,
		    "%s (%s)", err.message, rvf_code_name(rc));
		int e = ctl_error_exit(&err);
		exit_code = e == EXIT_IO || e == EXIT_OTHER ? e : EXIT_REFUSED;
	} else {
		rvf_view *v = rvf_store_view(s);
		verify_view(&r, v, pk, sigs);
		rvf_view_release(v);
		rvf_store_close(s);
		if (!r.ok)
			exit_code = EXIT_REFUSED;
	}
	if (ctx->json) {
		ctl_print_json(json_pack("{s:s,s:b,s:o,s:o,s:b}", "store", path, "ok", r.ok,
					 "checks", r.checks, "signatures", sigs,
					 "mounted", mounted_file != NULL));
	} else {
		print_checks(r.checks);
		json_decref(r.checks);
		json_decref(sigs);
	}
	if (!r.ok)
		fprintf(stderr, "rvfctl: %s: verification failed: %s\n", path, r.first);
	free(mounted_file);
	return exit_code;
}

/* Several STOREs: one report each (--json: one line each; text: headed by
 * the store's name), a failing one does not stop the rest; the exit code
 * is the first non-zero one. */
int cmd_verify(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pubkey", required_argument, NULL, 'k' },
		{ 0 },
	};
	const char *pubkey = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return EXIT_USAGE;
		pubkey = optarg;
	}
	if (optind >= argc)
		return ctl_usage_error(ctx, "verify needs STORE");
	uint8_t pk[RVF_SIGN_PUBLIC_KEY_BYTES];
	rvf_error err;
	if (pubkey && rvf_sign_read_key(pubkey, NULL, pk, &err) != RVF_OK)
		return ctl_report(ctx, "--pubkey", &err);
	bool several = argc - optind > 1;
	int rc = 0;
	for (int k = optind; k < argc; k++) {
		if (several && !ctx->json)
			printf("%s%s:\n", k > optind ? "\n" : "", argv[k]);
		int r = verify_one(ctx, argv[k], pubkey ? pk : NULL);
		if (!rc)
			rc = r;
	}
	return rc;
}
