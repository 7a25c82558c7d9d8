/* rvfctl launch: boot the store's embedded kernel in QEMU as upstream's
 * rvf-launch does (crates/rvf/rvf-launch/src/qemu.rs): the kernel and its
 * cmdline from the KERNEL segment, the store attached read-only as a
 * virtio block device, the kernel's api_port forwarded from --port on
 * 127.0.0.1, the serial console on stdout.  KVM when /dev/kvm can be
 * opened, else TCG.  An initramfs appended to a bzImage (the image is
 * longer than its setup header says) is passed as -initrd, which upstream
 * leaves for "a future version".  Default machine `pc`: Debian's kernels
 * print nothing on `microvm` (measured), which --machine microvm selects. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "mount.h"

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Length of the bzImage at the start of img (setup sectors + protected-
 * mode code), or len when it is not a bzImage. */
static size_t bzimage_length(const unsigned char *img, size_t len)
{
	if (len < 0x250 || memcmp(img + 0x202, "HdrS", 4) != 0)
		return len;
	unsigned setup = img[0x1F1] ? img[0x1F1] : 4;
	uint32_t syssize = le32(img + 0x1F4);
	uint64_t n = (uint64_t)(setup + 1) * 512 + (uint64_t)syssize * 16;
	/* A signed EFI-stub kernel (Debian's) carries its Authenticode
	 * certificate table after the code: PE data directory 4 says where. */
	if (img[0] == 'M' && img[1] == 'Z') {
		uint32_t pe = le32(img + 0x3C);
		if ((uint64_t)pe + 24 + 144 + 8 <= len && !memcmp(img + pe, "PE\0\0", 4) &&
		    le16(img + pe + 24) == 0x20B /* PE32+ */) {
			uint64_t off = le32(img + pe + 24 + 144), size = le32(img + pe + 24 + 148);
			if (off && off + size <= len && off + size > n)
				n = off + size;
		}
	}
	return n < len ? (size_t)n : len;
}

static int write_tmp(const char *dir, const char *name, const void *p, size_t n, char **out)
{
	if (asprintf(out, "%s/%s", dir, name) < 0)
		return ENOMEM;
	int fd = open(*out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	const unsigned char *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(fd);
			return e;
		}
		b += w;
		n -= (size_t)w;
	}
	return close(fd) < 0 ? errno : 0;
}

static bool kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* What the command line asks for. */
typedef struct {
	const char *path, *machine, *qemu;
	uint32_t memory, port; /* 0: from the kernel header */
	bool no_kvm;
} launch_opts;

static int parse_launch_args(ctl_ctx *ctx, int argc, char **argv, launch_opts *o)
{
	*o = (launch_opts){ .machine = "pc", .qemu = "qemu-system-x86_64" };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--memory") && i + 1 < argc) {
			if (!parse_u32(argv[++i], 1u << 20, &o->memory) || o->memory < 16)
				return ctl_usage_error(ctx, "--memory needs 16..1048576 (MiB)");
		} else if (!strcmp(a, "--port") && i + 1 < argc) {
			if (!parse_u32(argv[++i], 65535, &o->port) || !o->port)
				return ctl_usage_error(ctx, "--port needs 1..65535");
		} else if (!strcmp(a, "--no-kvm")) {
			o->no_kvm = true;
		} else if (!strcmp(a, "--machine") && i + 1 < argc) {
			o->machine = argv[++i];
			if (strcmp(o->machine, "pc") && strcmp(o->machine, "microvm"))
				return ctl_usage_error(ctx, "--machine is pc or microvm");
		} else if (!strcmp(a, "--qemu") && i + 1 < argc) {
			o->qemu = argv[++i];
		} else if (a[0] == '-' || o->path) {
			return ctl_usage_error(ctx, "usage: launch STORE [--memory MB] [--port N] [--no-kvm] [--machine pc|microvm] [--qemu PATH]");
		} else {
			o->path = a;
		}
	}
	if (!o->path)
		return ctl_usage_error(ctx, "launch needs STORE");
	return 0;
}

/* Runs QEMU in the foreground on the kernel (and initrd) written out, the
 * store file as its disk; returns the command's exit code. */
static int run_qemu(ctl_ctx *ctx, const launch_opts *o, const char *file, bool kvm,
		    uint16_t api, const char *kpath, const char *ipath, const char *cmdline)
{
	bool micro = !strcmp(o->machine, "microvm");
	char mach[64], mem[16], drive[PATH_MAX + 64], net[128];
	snprintf(mach, sizeof(mach), "%s,accel=%s", o->machine, kvm ? "kvm" : "tcg");
	snprintf(mem, sizeof(mem), "%uM", o->memory);
	snprintf(drive, sizeof(drive), "file=%s,format=raw,if=none,id=rvf,readonly=on", file);
	snprintf(net, sizeof(net), "user,id=net0,hostfwd=tcp:127.0.0.1:%u-:%u", o->port, api);
	const char *args[40];
	int n = 0;
	args[n++] = o->qemu;
	args[n++] = "-machine"; args[n++] = mach;
	args[n++] = "-cpu"; args[n++] = kvm ? "host" : "qemu64";
	args[n++] = "-m"; args[n++] = mem;
	args[n++] = "-smp"; args[n++] = "1";
	args[n++] = "-kernel"; args[n++] = kpath;
	if (ipath) {
		args[n++] = "-initrd";
		args[n++] = ipath;
	}
	args[n++] = "-append"; args[n++] = cmdline && *cmdline ? cmdline : "console=ttyS0";
	args[n++] = "-drive"; args[n++] = drive;
	args[n++] = "-device"; args[n++] = micro ? "virtio-blk-device,drive=rvf" : "virtio-blk-pci,drive=rvf";
	args[n++] = "-netdev"; args[n++] = net;
	args[n++] = "-device"; args[n++] = micro ? "virtio-net-device,netdev=net0" : "virtio-net-pci,netdev=net0";
	args[n++] = "-nographic";
	args[n++] = "-no-reboot";
	args[n] = NULL;
	fprintf(stderr, "rvfctl: launching %s (%s, %s, %u MiB, api port %u -> 127.0.0.1:%u)\n",
		o->path, o->machine, kvm ? "KVM" : "TCG", o->memory, api, o->port);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* QEMU goes when we go (a killed rvfctl leaves no VM). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(127);
		execvp(o->qemu, (char *const *)args);
		fprintf(stderr, "rvfctl: cannot run %s: %s\n", o->qemu, strerror(errno));
		_exit(127);
	}
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return ctl_fail(ctx, EXIT_IO, NULL, "cannot run %s: %s", o->qemu, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return ctl_fail(ctx, WIFEXITED(status) && WEXITSTATUS(status) == 127 ? EXIT_IO : EXIT_OTHER,
				NULL, "%s exited with status %d", o->qemu,
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

int cmd_launch(ctl_ctx *ctx, int argc, char **argv)
{
	launch_opts o;
	int prc = parse_launch_args(ctx, argc, argv, &o);
	if (prc)
		return prc;
	const char *path = o.path;
	char *file;
	rvf_store *s;
	int orc = mnt_open_file_read_only(ctx, path, &s, &file);
	if (orc)
		return orc;
	rvf_error err;
	rvf_view *v = rvf_store_view(s);
	rvf_kernel_info k = { 0 };
	unsigned char *img = NULL;
	size_t len = 0;
	char *cmdline = NULL;
	int rc = 0;
	if (!rvf_view_kernel(v, &k))
		rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s has no kernel to launch", path);
	else if (rvf_view_kernel_image(v, &img, &len, &cmdline, &err) != RVF_OK)
		rc = ctl_report(ctx, path, &err);
	rvf_view_release(v);
	rvf_store_close(s);
	char tmpl[] = "/tmp/rvfctl-launch-XXXXXX";
	char *kpath = NULL, *ipath = NULL;
	if (!rc && !mkdtemp(tmpl))
		rc = ctl_fail(ctx, EXIT_IO, NULL, "cannot make a temporary directory: %s", strerror(errno));
	size_t klen = img ? bzimage_length(img, len) : 0;
	int e = 0;
	if (!rc && ((e = write_tmp(tmpl, "kernel", img, klen, &kpath)) ||
		    (klen < len && (e = write_tmp(tmpl, "initrd", img + klen, len - klen, &ipath)))))
		rc = ctl_fail(ctx, EXIT_IO, NULL, "cannot write the kernel for QEMU: %s", strerror(e));
	free(img);
	bool kvm = !o.no_kvm && kvm_usable();
	uint16_t api = k.api_port ? k.api_port : 8080;
	if (!o.port)
		o.port = api;
	if (!o.memory)
		o.memory = k.min_memory_mb > 256 ? k.min_memory_mb : 256;
	if (!rc)
		rc = run_qemu(ctx, &o, file, kvm, api, kpath, ipath, cmdline);
	if (kpath)
		unlink(kpath);
	if (ipath)
		unlink(ipath);
	rmdir(tmpl);
	free(kpath);
	free(ipath);
	free(cmdline);
	if (!rc && ctx->json)
		ctl_print_json(json_pack("{s:s,s:s,s:s,s:i,s:i,s:b}", "status", "exited", "machine",
					 o.machine, "accel", kvm ? "kvm" : "tcg", "api_port", (int)api,
					 "host_port", (int)o.port, "initrd", klen < len));
	free(file);
	return rc;
}
