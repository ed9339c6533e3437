/*
 * pmemlab-agent-relay PORT SOCKET
 *
 * Carries the guest agent's protocol between the virtio-serial PORT the host talks to and the
 * UNIX SOCKET on which qemu-ga listens (qemu-ga -m unix-listen).
 *
 * Why not qemu-ga on the port directly: with no host client connected, every read of the port
 * returns end-of-file, and qemu-ga then sleeps 100 ms before it looks again, so each new host
 * connection (every `pmemlab exec`) waited 0 to 100 ms for its first answer. This relay instead
 * sleeps until the kernel signals (SIGIO) that the host side opened the port: it answers at once.
 * A host disconnect also ends qemu-ga's session, so no stale reply reaches the next client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *port_path;
static const char *socket_path;

static void die(const char *what)
{
	fprintf(stderr, "pmemlab-agent-relay: %s: %s\n", what, strerror(errno));
	_exit(1);
}

/* True while the host has the port open (the driver reports POLLHUP when it has not). */
static int host_connected(int port)
{
	struct pollfd p = {.fd = port, .events = POLLIN};
	if (poll(&p, 1, 0) < 0 && errno != EINTR)
		die("poll");
	return !(p.revents & POLLHUP);
}

/*
 * Sleeps until the host opens the port: SIGIO comes when it does. Should a kernel not send it,
 * the 100 ms timeout makes this no slower than qemu-ga polling the port.
 */
static void wait_for_host(int port)
{
	sigset_t sigio;
	sigemptyset(&sigio);
	sigaddset(&sigio, SIGIO);
	struct timespec timeout = {.tv_nsec = 100 * 1000 * 1000};
	while (!host_connected(port))
		sigtimedwait(&sigio, NULL, &timeout);
}

/* qemu-ga's socket; it may still be starting, so keep trying (every 20 ms). */
static int connect_agent(void)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(address.sun_path)) {
		errno = ENAMETOOLONG;
		die(socket_path);
	}
	strcpy(address.sun_path, socket_path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0)
			return fd;
		close(fd);
		struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
}

/* Writes all of buf to fd, waiting while it is full; -1 when the other side went away. */
static int write_all(int fd, const char *buf, ssize_t length)
{
	while (length > 0) {
		ssize_t written = write(fd, buf, length);
		if (written > 0) {
			buf += written;
			length -= written;
			continue;
		}
		if (written < 0 && errno == EINTR)
			continue;
		if (written < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, -1);
			if (p.revents & (POLLHUP | POLLERR))
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Copies both ways until the host closes the port (0) or qemu-ga closes its socket (1). */
static int relay(int port, int agent)
{
	static char buf[65536];
	for (;;) {
		struct pollfd p[2] = {{.fd = port, .events = POLLIN}, {.fd = agent, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents & POLLIN) {
			ssize_t n = read(port, buf, sizeof(buf));
			if (n == 0)
				return 0;
			if (n > 0 && write_all(agent, buf, n) < 0)
				return 1;
		} else if (p[0].revents & (POLLHUP | POLLERR)) {
			return 0;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(agent, buf, sizeof(buf));
			if (n <= 0)
				return 1;
			if (write_all(port, buf, n) < 0)
				return 0;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: pmemlab-agent-relay PORT SOCKET\n");
		return 2;
	}
	port_path = argv[1];
	socket_path = argv[2];
	signal(SIGPIPE, SIG_IGN);
	/* SIGIO stays blocked: sigtimedwait collects it, so none is lost between a check and the wait. */
	sigset_t sigio;
	sigemptyset(&sigio);
	sigaddset(&sigio, SIGIO);
	sigprocmask(SIG_BLOCK, &sigio, NULL);

	int port = open(port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (port < 0)
		die(port_path);
	if (fcntl(port, F_SETOWN, getpid()) < 0 || fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_ASYNC) < 0)
		die("fcntl");
	for (;;) {
		wait_for_host(port);
		int agent = connect_agent();
		while (relay(port, agent) == 1) {
			/* qemu-ga went away (it is restarted): the host is still there, reconnect. */
			close(agent);
			agent = connect_agent();
		}
		close(agent);
	}
}
