/* reboot-with-command N: restarts with reboot(LINUX_REBOOT_CMD_RESTART2, "N"), as
 * `reboot N` does on a Raspberry Pi kernel >= 4.9 (contract P9/P10). Busybox's reboot takes
 * no argument, so the Pi 1.x stand-in gets this from the harness disk (test-only; the stager
 * makes the call itself). Built static by qemu-tests/src/pi1x_standin.rs with Debian's
 * arm-linux-gnueabihf-gcc. reboot(2): the argument is a string the kernel prints as
 * "Restarting system with command '%s'" (kernel/reboot.c kernel_restart). */
#include <linux/reboot.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PARTITION\n", argv[0]);
		return 2;
	}
	sync();
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART2,
		argv[1]);
	perror("reboot(LINUX_REBOOT_CMD_RESTART2)");
	return 1;
}
