/* rvfctl verify-attestation: the kernel's image hash, its KernelBinding
 * and the attestation witness entries (engine/attest.c), with upstream's
 * `rvf verify-attestation --json` field names.  Exit 3 on any mismatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

int cmd_verify_attestation(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "verify-attestation needs STORE");
	const char *path = argv[1];
	rvf_store *s;
	int orc = mnt_open_file_read_only(ctx, path, &s, NULL);
	if (orc)
		return orc;
	rvf_error err;
	rvf_view *v = rvf_store_view(s);
	rvf_attestation a;
	rvf_code rc = rvf_view_verify_attestation(v, &a, &err);
	rvf_view_release(v);
	rvf_store_close(s);
	bool ok = rc == RVF_OK;
	const char *status = !a.has_kernel && !a.witnesses ? "no_kernel" : ok ? "valid" : "invalid";
	if (ctx->json) {
		json_t *errs = json_array();
		if (!ok)
			json_array_append_new(errs, json_string(a.problem));
		json_t *o = json_pack("{s:s,s:b,s:b,s:i,s:b,s:s,s:o,s:o,s:I,s:b,s:b,s:i,s:i,s:i,s:o}",
				      "status", status, "has_kernel", a.has_kernel,
				      "magic_valid", a.magic_ok, "arch", (int)a.arch,
				      "image_hash_valid", a.image_hash_ok,
				      "image_hash_algo", a.image_hash_algo,
				      "stored_image_hash", json_hex(a.stored_hash, 32),
				      "computed_image_hash", json_hex(a.shake_hash, 32),
				      "image_size", (json_int_t)a.image_size,
				      "has_kernel_binding", a.has_binding,
				      "binding_valid", a.binding_ok,
				      "attestation_witnesses", (int)a.witnesses,
				      "attestation_verified", (int)a.witnesses_ok,
				      "attestation_entries", (int)a.entries,
				      "attestation_errors", errs);
		if (a.has_binding) {
			json_object_set_new(o, "manifest_root_hash", json_hex(a.manifest_root_hash, 32));
			json_object_set_new(o, "policy_hash", json_hex(a.policy_hash, 32));
			json_object_set_new(o, "binding_version", json_integer(a.binding_version));
		}
		ctl_print_json(o);
	} else if (!a.has_kernel && !a.witnesses) {
		printf("no kernel and no attestation witness in %s\n", path);
	} else {
		char hex[65];
		if (a.has_kernel) {
			printf("kernel:            %s (arch %u, %llu-byte image)\n",
			       a.magic_ok ? "RVKN header" : "BAD MAGIC", a.arch,
			       (unsigned long long)a.image_size);
			hex_encode(a.stored_hash, 32, hex);
			printf("stored image hash: %s\n", hex);
			hex_encode(a.shake_hash, 32, hex);
			printf("SHAKE-256-256:     %s\n", hex);
			printf("image hash:        %s\n", a.image_hash_ok ? a.image_hash_algo : "MISMATCH");
			if (a.has_binding) {
				hex_encode(a.manifest_root_hash, 32, hex);
				printf("KernelBinding:     version %u, %s\n  manifest root %s\n",
				       a.binding_version, a.binding_ok ? "valid" : "INVALID", hex);
				hex_encode(a.policy_hash, 32, hex);
				printf("  policy        %s\n", hex);
			} else {
				printf("KernelBinding:     none\n");
			}
		}
		printf("attestation witnesses: %u (%u verified, %u entries)\n", a.witnesses,
		       a.witnesses_ok, a.entries);
		printf("%s\n", ok ? "attestation verification PASSED" : "attestation verification FAILED");
	}
	if (!ok) {
		if (!ctx->json)
			fprintf(stderr, "rvfctl: %s: %s\n", path, a.problem);
		return EXIT_REFUSED;
	}
	return 0;
}
