/* rvfctl - create, inspect and change RVF stores from the shell. */
#include <stdio.h>
#include <string.h>

#include "common.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{ "create", cmd_create, "create STORE --dim N [--metric l2|cosine|ip] [--profile P]" },
	{ "ingest", cmd_ingest, "ingest STORE FILE... (.csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)" },
	{ "query", cmd_query, "query STORE --vector \"x,y,...\" [--k N] [--filter JSON] [--threads N] [--json]" },
	{ "delete", cmd_delete, "delete STORE (--ids ID,... | --filter JSON) [--json]" },
	{ "status", cmd_status, "status STORE [--json]" },
	{ "inspect", cmd_inspect, "inspect STORE [--json]" },
	{ "export", cmd_export, "export STORE [--format jsonl|json|csv|fvecs] [-o OUT]" },
	{ "compact", cmd_compact, "compact STORE [--json]" },
	{ "derive", cmd_derive, "derive PARENT CHILD [--dim N] [--metric M] [--json]" },
	{ "branch", cmd_branch, "branch PARENT CHILD [--json]" },
	{ "freeze", cmd_freeze, "freeze STORE [--json]" },
	{ "embed-kernel", cmd_embed_kernel, "embed-kernel STORE IMAGE [--arch N] [--type N] [--flags N] [--api-port N] [--cmdline S] [--compress]" },
	{ "extract-kernel", cmd_extract_kernel, "extract-kernel STORE OUT" },
	{ "remove-kernel", cmd_remove_kernel, "remove-kernel STORE" },
	{ "embed-ebpf", cmd_embed_ebpf, "embed-ebpf STORE PROG [--btf FILE] [--prog-type N] [--attach-type N] [--max-dim N]" },
	{ "extract-ebpf", cmd_extract_ebpf, "extract-ebpf STORE OUT [--btf OUT]" },
	{ "remove-ebpf", cmd_remove_ebpf, "remove-ebpf STORE" },
};

static void usage(FILE *f)
{
	fputs("usage: rvfctl COMMAND [ARGS]\n\ncommands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  rvfctl %s\n", commands[i].usage);
	fputs("\nexit codes: 0 ok, 1 error, 2 usage, 3 refused or damaged input, 4 I/O error or lock held\n", f);
}

int main(int argc, char **argv)
{
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
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			int rc = commands[i].run(argc - 1, argv + 1);
			if (rc == EXIT_USAGE)
				fprintf(stderr, "usage: rvfctl %s\n", commands[i].usage);
			return rc;
		}
	}
	fprintf(stderr, "rvfctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
