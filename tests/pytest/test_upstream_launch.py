"""rvfctl launch: boots the store's embedded kernel in QEMU (as upstream's
rvf-launch).  The kernel is Debian's linux-image-cloud-amd64, with a tiny
busybox-static initramfs appended, embedded with `rvfctl embed-kernel`; the
test sees the line the initramfs prints on the serial console.  KVM when
/dev/kvm works, else TCG; bounded by a 240 s timeout (TCG boots in about
30 s alone, 2 minutes and more on a loaded machine).  rvfctl takes QEMU
down with it when it is killed."""

import glob
import gzip
import json
import os
import shutil
import subprocess

import pytest

from mountlib import build_dir_path

MARK = "RVF-LAUNCH-INITRAMFS-SAYS-HELLO"


def _newc(name, mode, data=b"", rdev=(0, 0), ino=[100]):
    ino[0] += 1
    nb = name.encode() + b"\0"
    fields = (ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0)
    out = ("070701" + "".join("%08X" % f for f in fields)).encode() + nb
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def initramfs(busybox):
    """A gzip'd newc cpio: /dev/console, /bin/busybox and an /init that
    prints MARK and reboots (QEMU runs with -no-reboot: it exits)."""
    init = (f"#!/bin/busybox sh\n/bin/busybox echo {MARK}\n"
            "/bin/busybox reboot -f\n").encode()
    c = (_newc("dev", 0o40755) + _newc("dev/console", 0o20600, rdev=(5, 1)) +
         _newc("bin", 0o40755) + _newc("bin/busybox", 0o100755, open(busybox, "rb").read()) +
         _newc("init", 0o100755, init) + _newc("TRAILER!!!", 0))
    return gzip.compress(c + b"\0" * (-len(c) % 512))


def _kernel():
    k = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64")) or sorted(glob.glob("/boot/vmlinuz-*"))
    return k[-1] if k else None


# The boot itself does not depend on the build under test (a minute or two
# of TCG): once, in the background pass.  rvfctl's own part runs in both
# passes (test_launch_hands_qemu_what_upstream_does, with a stand-in for QEMU).
@pytest.mark.background_pass
def test_launch_boots_the_embedded_kernel(store, run_ctl, tmp_path):
    qemu = shutil.which("qemu-system-x86_64")
    kernel = _kernel()
    busybox = shutil.which("busybox")
    if not qemu:
        pytest.skip("QEMU cannot run here: qemu-system-x86_64 is not installed")
    assert kernel, "no kernel in /boot (tests/run-all.sh installs linux-image-cloud-amd64)"
    assert busybox, "busybox-static is not installed"
    img = tmp_path / "kernel+initrd"
    img.write_bytes(open(kernel, "rb").read() + initramfs(busybox))
    s = store(dim=2)
    run_ctl("embed-kernel", s, img, "--cmdline", "console=ttyS0 quiet", "--api-port", "8080")
    exe = build_dir_path() / "ctl" / "rvfctl"
    cp = subprocess.run([str(exe), "launch", str(s), "--port", "18089",
                         "--memory", "256", "--json"], capture_output=True, text=True,
                        timeout=240)
    assert MARK in cp.stdout, cp.stdout[-3000:] + cp.stderr[-2000:]
    assert cp.returncode == 0, cp.stderr
    last = json.loads(cp.stdout.strip().splitlines()[-1])
    assert last["status"] == "exited" and last["initrd"] is True
    assert last["accel"] == ("kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg")
    assert "launching" in cp.stderr


FAKE_QEMU = r"""#!/bin/bash
# Stands in for qemu-system-x86_64: keeps its arguments and the files it
# was given, prints the console line, exits 0.
out=$(dirname "$0")
printf '%s\n' "$@" > "$out/argv"
while [ $# -gt 0 ]; do
	case $1 in
	-kernel) cp "$2" "$out/got-kernel" ;;
	-initrd) cp "$2" "$out/got-initrd" ;;
	esac
	shift
done
echo GUEST-SAYS-HELLO
"""


def test_launch_hands_qemu_what_upstream_does(store, run_ctl, tmp_path):
    """rvfctl's side of launch, in both passes (sanitizers included): the
    image split into kernel and appended initramfs, the cmdline, the store
    read-only on virtio, the api port forwarded, the temporary files gone."""
    kernel, busybox = _kernel(), shutil.which("busybox")
    if not kernel or not busybox:
        pytest.skip("no kernel in /boot or no busybox (tests/run-all.sh installs them)")
    kbytes = open(kernel, "rb").read()
    rd = initramfs(busybox)
    img = tmp_path / "kernel+initrd"
    img.write_bytes(kbytes + rd)
    s = store(dim=2)
    run_ctl("embed-kernel", s, img, "--cmdline", "console=ttyS0 quiet", "--api-port", "8080")
    fake = tmp_path / "qemu" / "fake-qemu"
    fake.parent.mkdir()
    fake.write_text(FAKE_QEMU)
    fake.chmod(0o755)
    cp = run_ctl("launch", s, "--port", "18090", "--memory", "300", "--no-kvm",
                 "--qemu", fake, "--json")
    assert "GUEST-SAYS-HELLO" in cp.stdout
    last = json.loads(cp.stdout.strip().splitlines()[-1])
    assert last == {"status": "exited", "machine": "pc", "accel": "tcg", "api_port": 8080,
                    "host_port": 18090, "initrd": True}
    got_k = (fake.parent / "got-kernel").read_bytes()
    assert got_k + (fake.parent / "got-initrd").read_bytes() == kbytes + rd
    assert got_k == kbytes  # split where the bzImage (with its signature) ends
    argv = (fake.parent / "argv").read_text().splitlines()
    opt = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("-")}
    assert opt["-machine"] == "pc,accel=tcg" and opt["-m"] == "300M"
    assert opt["-append"] == "console=ttyS0 quiet"
    assert opt["-drive"] == f"file={s},format=raw,if=none,id=rvf,readonly=on"
    assert opt["-netdev"] == "user,id=net0,hostfwd=tcp:127.0.0.1:18090-:8080"
    # the kernel and initrd were temporary files, gone after QEMU exits
    assert not os.path.exists(opt["-kernel"]) and not os.path.exists(opt["-initrd"])


def test_launch_without_kernel_is_refused(store, run_ctl):
    s = store(dim=2)
    cp = run_ctl("launch", s, check=False)
    assert cp.returncode == 1 and "no kernel" in cp.stderr
    assert run_ctl("launch", s, "--machine", "vax", check=False).returncode == 2
