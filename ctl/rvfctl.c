/* rvfctl - create, inspect and change RVF stores from the shell.
 *
 * Thin main: global options, then one file per command (cmd_*.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct command {
	const char *name;
	int (*run)(ctl_ctx *ctx, int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{ "create", cmd_create, "create STORE --dim N [--metric l2|cosine|ip] [--profile P]" },
	{ "ingest", cmd_ingest, "ingest STORE FILE... (.csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)" },
	{ "query", cmd_query, "query STORE --vector \"x,y,...\" [--vector ...] [--k N]... [--filter JSON] [--meta] [--threads N] | query STORE --file FILE [--k N]" },
	{ "delete", cmd_delete, "delete STORE (--ids ID,... | --filter JSON)" },
	{ "status", cmd_status, "status STORE" },
	{ "inspect", cmd_inspect, "inspect STORE..." },
	{ "export", cmd_export, "export STORE [--format jsonl|json|csv|fvecs] [-o OUT]" },
	{ "compact", cmd_compact, "compact STORE [--force]   (--force: even when branch children depend on it)" },
	{ "derive", cmd_derive, "derive PARENT CHILD [--type clone|filter|merge|quantize|reindex|transform|snapshot] [--dim N] [--metric M]" },
	{ "branch", cmd_branch, "branch PARENT CHILD" },
	{ "freeze", cmd_freeze, "freeze STORE" },
	{ "restore", cmd_restore, "restore DIR OUT   (OUT: the store file rebuilt from a copy DIR of MNT/segments)" },
	{ "detach", cmd_detach, "detach CHILD   (a branch child stops depending on its parent)" },
	{ "embed-kernel", cmd_embed_kernel, "embed-kernel STORE IMAGE [--arch N] [--type N] [--flags N] [--api-port N] [--cmdline S] [--compress|--no-compress]" },
	{ "extract-kernel", cmd_extract_kernel, "extract-kernel STORE OUT" },
	{ "remove-kernel", cmd_remove_kernel, "remove-kernel STORE" },
	{ "embed-ebpf", cmd_embed_ebpf, "embed-ebpf STORE PROG [--btf FILE] [--prog-type N] [--attach-type N] [--max-dim N]" },
	{ "extract-ebpf", cmd_extract_ebpf, "extract-ebpf STORE OUT [--btf OUT]" },
	{ "remove-ebpf", cmd_remove_ebpf, "remove-ebpf STORE" },
	{ "filter", cmd_filter, "filter STORE (--include-ids ID,... | --exclude-ids ID,...) [-o OUT]" },
	{ "rebuild-refcounts", cmd_rebuild_refcounts, "rebuild-refcounts STORE" },
	{ "serve", cmd_serve, "serve STORE [--port N] [--bind ADDR] [--max-body BYTES]" },
	{ "launch", cmd_launch, "launch STORE [--memory MB] [--port N] [--no-kvm] [--machine pc|microvm] [--qemu PATH]" },
	{ "extract-wasm", cmd_extract_wasm, "extract-wasm STORE OUT [--name NAME]   (OUT is a directory when the store has several modules)" },
	{ "extract-dashboard", cmd_extract_dashboard, "extract-dashboard STORE OUTDIR" },
	{ "verify", cmd_verify, "verify STORE... [--pubkey FILE]" },
	{ "verify-attestation", cmd_verify_attestation, "verify-attestation STORE" },
	{ "keygen", cmd_keygen, "keygen PREFIX" },
	{ "sign", cmd_sign, "sign STORE [--key PREFIX]" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("usage: rvfctl [--json] [--config FILE] [--wait SECONDS] COMMAND [ARGS]\n\ncommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  rvfctl %s\n", commands[i].usage);
	fputs("\n"
	      "STORE is a store file, or the mount point of an rvffs mount of one: then\n"
	      "the command acts through the mounted tree and its `control` file, and the\n"
	      "daemon shows the change at once.\n"
	      "\n"
	      "global options (accepted anywhere before `--`):\n"
	      "  --json          one JSON document on stdout (errors too: {\"error\": ...})\n"
	      "  --config FILE   configuration file (default: $XDG_CONFIG_HOME/rvffs/rvffs.conf,\n"
	      "                  then /etc/rvffs.conf); see rvffs.conf(5)\n"
	      "  --wait SECONDS  wait up to SECONDS (default 5) for another writer, e.g. an\n"
	      "                  rvffs that is unmounting, to release the store's lock\n"
	      "\n"
	      "A progress bar is drawn on stderr for long operations when stderr is a terminal.\n"
	      "\n"
	      "exit codes:\n"
	      "  0  ok\n"
	      "  1  other error (exists, not found, read-only)\n"
	      "  2  usage: bad command line or configuration file\n"
	      "  3  refused: damaged store, bad input data, failed verification\n"
	      "  4  I/O error, or the store's lock is held by another writer\n", f);
}

/* Takes the global options out of argv (they may come anywhere before a
 * `--`, so that `rvfctl status S --json` works); returns the new argc or
 * -1 on a usage error. */
static int global_options(int argc, char **argv, ctl_ctx *ctx,
			  const char **config)
{
	int w = 1;
	bool rest = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!rest && !strcmp(a, "--")) {
			rest = true;
		} else if (!rest && !strcmp(a, "--json")) {
			ctx->json = true;
			continue;
		} else if (!rest && !strcmp(a, "--config")) {
			if (i + 1 == argc)
				return -1;
			*config = argv[++i];
			continue;
		} else if (!rest && !strncmp(a, "--config=", 9)) {
			*config = a + 9;
			continue;
		} else if (!rest && (!strcmp(a, "--wait") || !strncmp(a, "--wait=", 7))) {
			const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
			if (!config_parse_wait(v, &ctx->wait_ms))
				return -2;
			continue;
		}
		argv[w++] = argv[i];
	}
	argv[w] = NULL;
	return w;
}

int main(int argc, char **argv)
{
	ctl_ctx ctx = { .wait_ms = RVF_LOCK_WAIT_DEFAULT_MS };
	const char *config = NULL;
	argc = global_options(argc, argv, &ctx, &config);
	if (argc == -2)
		return ctl_usage_error(&ctx, "--wait needs SECONDS (0 to 3600)");
	if (argc < 0)
		return ctl_usage_error(&ctx, "--config needs FILE");
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		puts("rvfctl 0.1.0");
		return 0;
	}
	const struct command *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		int rc = ctl_usage_error(&ctx, "unknown command '%s'", argv[1]);
		if (!ctx.json)
			usage(stderr);
		return rc;
	}
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: rvfctl %s\n", cmd->usage);
			return 0;
		}
	char why[PATH_MAX + 300];
	if (!config_load(config, &ctx.cfg, why, sizeof(why)))
		return ctl_usage_error(&ctx, "%s", why);
	int rc = cmd->run(&ctx, argc - 1, argv + 1);
	if (rc == EXIT_USAGE && !ctx.json)
		fprintf(stderr, "usage: rvfctl %s\n", cmd->usage);
	return rc;
}
