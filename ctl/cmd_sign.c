/* rvfctl keygen and sign: Ed25519 signatures over a store's content
 * (docs/format-signature.md). */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

int cmd_keygen(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "keygen needs PREFIX");
	uint8_t pk[RVF_SIGN_PUBLIC_KEY_BYTES];
	rvf_error err;
	if (rvf_sign_keygen(argv[1], pk, &err) != RVF_OK)
		return ctl_report(ctx, NULL, &err);
	char hex[2 * RVF_SIGN_PUBLIC_KEY_BYTES + 1];
	hex_encode(pk, sizeof(pk), hex);
	if (ctx->json) {
		char *pub = NULL;
		if (asprintf(&pub, "%s.pub", argv[1]) < 0)
			return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		ctl_print_json(json_pack("{s:s,s:s,s:s}", "secretKey", argv[1],
					 "publicKey", pub, "publicKeyHex", hex));
		free(pub);
	} else {
		printf("secret key %s (keep it private), public key %s.pub: %s\n",
		       argv[1], argv[1], hex);
	}
	return 0;
}

/* The signature by pk that verify finds in the store at path (for the
 * report); false when there is none to show. */
static bool find_signature(const char *path, const uint8_t *pk,
			   rvf_signature_check *out)
{
	rvf_store *s;
	if (rvf_store_open(path, RVF_OPEN_READ_ONLY, &s, NULL) != RVF_OK)
		return false;
	rvf_view *v = rvf_store_view(s);
	rvf_signature_check *checks;
	size_t n;
	bool found = false;
	rvf_view_verify_signatures(v, pk, &checks, &n, NULL);
	for (size_t i = 0; i < n; i++)
		if (checks[i].trusted) {
			*out = checks[i];
			found = true;
		}
	free(checks);
	rvf_view_release(v);
	rvf_store_close(s);
	return found;
}

int cmd_sign(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ 0 },
	};
	/* The key defaults to [signing] key of rvffs.conf. */
	const char *key = ctx->cfg.signing_key[0] ? ctx->cfg.signing_key : NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return EXIT_USAGE;
		key = optarg;
	}
	if (optind != argc - 1)
		return ctl_usage_error(ctx, "sign needs STORE");
	if (!key)
		return ctl_usage_error(ctx, "sign needs --key PREFIX (or [signing] key in rvffs.conf)");
	const char *path = argv[optind];
	uint8_t sk[RVF_SIGN_SECRET_KEY_BYTES], pk[RVF_SIGN_PUBLIC_KEY_BYTES];
	rvf_error err;
	/* Read here in both modes: a bad key fails before the daemon is asked. */
	if (rvf_sign_read_key(key, sk, pk, &err) != RVF_OK)
		return ctl_report(ctx, "--key", &err);
	bool mounted = mnt_detect(path);
	char *file = NULL;
	int rc;
	if (mounted) {
		sodium_memzero(sk, sizeof(sk));
		char *abs = absolute_path(key);
		char *q = abs ? mnt_quote(abs) : NULL;
		char *line = NULL;
		rc = !q || asprintf(&line, "sign %s", q) < 0 ?
		     ctl_fail(ctx, EXIT_IO, NULL, "out of memory") :
		     mnt_command(ctx, path, "sign", line);
		free(line);
		free(q);
		free(abs);
		file = mnt_store_path(path);
	} else {
		rvf_store *s;
		rc = ctl_open(ctx, path, true, &s);
		if (!rc) {
			if (rvf_store_sign(s, sk, pk, NULL, &err) != RVF_OK)
				rc = ctl_report(ctx, path, &err);
			rvf_store_close(s);
		}
		sodium_memzero(sk, sizeof(sk));
		file = strdup(path);
	}
	if (rc) {
		free(file);
		return rc;
	}
	rvf_signature_check sig;
	bool shown = file && find_signature(file, pk, &sig);
	free(file);
	char hex[65];
	hex_encode(pk, 32, hex);
	if (ctx->json) {
		json_t *o = json_pack("{s:s,s:b}", "publicKey", hex, "mounted", mounted);
		if (shown) {
			json_object_set_new(o, "signedEpoch", json_integer(sig.epoch));
			json_object_set_new(o, "covered", json_integer(sig.covered));
			json_object_set_new(o, "offset", json_integer((json_int_t)sig.offset));
		}
		ctl_print_json(o);
	} else if (shown) {
		printf("signed epoch %u (%u segments) with key %s\n", sig.epoch,
		       sig.covered, hex);
	} else {
		printf("signed with key %s\n", hex);
	}
	return 0;
}
