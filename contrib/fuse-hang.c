/*
 * fuse-hang: a FUSE mount whose daemon never answers, the stand-in for a
 * dead NFS or CIFS server (README, "Monitoring", the table of tools).
 *
 *   cc -O2 -o fuse-hang contrib/fuse-hang.c
 *   unshare -m --propagation private sh -c './fuse-hang /mnt/hung & ...'
 *
 * Opens /dev/fuse, mounts a filesystem of type "fuse" on DIR with that
 * descriptor (needs root, or CAP_SYS_ADMIN in the mount namespace), and
 * then never reads the descriptor: the kernel's INIT request, and every
 * request after it (statfs, stat, open, ...), waits for an answer that
 * never comes. The waits are killable (TASK_KILLABLE: ps shows D), so a
 * blocked process ends with SIGKILL, not SIGTERM or SIGINT.
 *
 * Ending it: kill this program (closing the descriptor aborts the
 * connection; waiting calls then fail with ENOTCONN), and `umount -l DIR`.
 * Run it in a private mount namespace (unshare -m) so that nothing else
 * on the machine sees the mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char opts[128];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "fuse-hang: /dev/fuse: %s\n", strerror(errno));
		return 1;
	}
	snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	if (mount("fuse-hang", argv[1], "fuse", MS_NOSUID | MS_NODEV, opts) != 0) {
		fprintf(stderr, "fuse-hang: mount %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("fuse-hang: %s mounted, never answering (pid %d)\n", argv[1], (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
