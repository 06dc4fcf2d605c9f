// forward is bench-proxy's ceiling: the least a user-space TCP forwarder
// can do per byte and per connection with epoll, written to be measured,
// not deployed. It has no configuration, health checks, timeouts, metrics,
// limits or logging; it keeps no connection it cannot forward and frees
// nothing it does not have to.
//
// Each thread has its own epoll set and an SO_REUSEPORT listener per
// route (the kernel spreads connections over the threads), edge-triggered
// events, a non-blocking connect per client and, per direction, either
// read/write through the thread's buffer (a remainder the peer could not
// take is kept and reading stops until it is sent) or, with -s, splice
// through a pipe per direction, as HAProxy's splicing does. A read that
// returns less than asked for ends the turn without the read that would
// return EAGAIN, unless epoll reported the peer's FIN (EPOLLRDHUP), which
// may have come with the data and would bring no further event. EOF is passed on as shutdown(SHUT_WR) once everything read
// has been written; an error closes both sides.
//
//	forward [-t threads] [-s] listen=backend ...
//
// Addresses are IPv4 a.b.c.d:port.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ceiling.h"

#define BUFSZ 16384
#define PIPESZ (1 << 20)

struct conn;

// A side is one socket of a connection; it reads into its direction
// (towards the peer side).
struct side {
	int fd;
	int eof;         // read returned 0
	int rdhup;       // epoll reported the peer's FIN (or an error): read to the end
	int shut;        // the peer's write side was shut down after eof
	char *pend;      // read, not yet written to the peer (read/write mode)
	size_t pendOff, pendLen;
	int pipe[2];     // splice mode: bytes read, not yet written
	size_t inPipe;
	struct conn *c;
};

struct conn {
	struct side s[2]; // 0: client, 1: backend
	int dead;
	struct conn *nextDead;
};

static int splicing;

static void setNoDelay(int fd) {
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct side *peerOf(struct side *x) {
	return x == &x->c->s[0] ? &x->c->s[1] : &x->c->s[0];
}

static void drop(struct conn *c, struct conn **dead) {
	if (c->dead)
		return;
	c->dead = 1;
	for (int i = 0; i < 2; i++) {
		close(c->s[i].fd);
		if (c->s[i].pipe[0] >= 0) {
			close(c->s[i].pipe[0]);
			close(c->s[i].pipe[1]);
		}
	}
	c->nextDead = *dead;
	*dead = c;
}

// flowRW moves what in can give to out with read/write. It returns -1 on
// an error.
static int flowRW(struct side *in, char *buf) {
	struct side *out = peerOf(in);
	for (;;) {
		if (in->pendLen > 0) {
			ssize_t w = write(out->fd, in->pend + in->pendOff, in->pendLen);
			if (w < 0)
				return errno == EAGAIN ? 0 : -1;
			in->pendOff += w;
			in->pendLen -= w;
			if (in->pendLen > 0)
				return 0;
		}
		if (in->eof)
			break;
		ssize_t r = read(in->fd, buf, BUFSZ);
		if (r < 0)
			return errno == EAGAIN ? 0 : -1;
		if (r == 0) {
			in->eof = 1;
			break;
		}
		ssize_t w = write(out->fd, buf, r);
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w < 0)
			w = 0;
		if (w < r) {
			if (!in->pend && !(in->pend = malloc(BUFSZ)))
				return -1;
			memcpy(in->pend, buf + w, r - w);
			in->pendOff = 0;
			in->pendLen = r - w;
			return 0;
		}
		if (r < BUFSZ && !in->rdhup)
			return 0;
	}
	if (!in->shut) {
		in->shut = 1;
		shutdown(out->fd, SHUT_WR);
	}
	return 0;
}

// flowSplice is flowRW through in's pipe.
static int flowSplice(struct side *in) {
	struct side *out = peerOf(in);
	if (in->pipe[0] < 0) {
		if (pipe2(in->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
			return -1;
		fcntl(in->pipe[1], F_SETPIPE_SZ, PIPESZ);
	}
	for (;;) {
		if (in->inPipe > 0) {
			ssize_t w = splice(in->pipe[0], NULL, out->fd, NULL, in->inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (w < 0)
				return errno == EAGAIN ? 0 : -1;
			in->inPipe -= w;
			if (in->inPipe > 0)
				return 0;
		}
		if (in->eof)
			break;
		ssize_t r = splice(in->fd, NULL, in->pipe[1], NULL, PIPESZ, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (r < 0)
			return errno == EAGAIN ? 0 : -1;
		if (r == 0) {
			in->eof = 1;
			continue;
		}
		in->inPipe += r;
	}
	if (!in->shut) {
		in->shut = 1;
		shutdown(out->fd, SHUT_WR);
	}
	return 0;
}

static void serve(struct conn *c, char *buf, struct conn **dead) {
	for (int i = 0; i < 2; i++) {
		int err = splicing ? flowSplice(&c->s[i]) : flowRW(&c->s[i], buf);
		if (err < 0) {
			drop(c, dead);
			return;
		}
	}
	if (c->s[0].shut && c->s[1].shut)
		drop(c, dead);
}

static void add(int ep, int fd, void *tok) {
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = tok};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

static void accept1(int ep, int ln, struct route *r) {
	for (;;) {
		int cfd = accept4(ln, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		int bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (bfd < 0) {
			close(cfd);
			continue;
		}
		setNoDelay(cfd);
		setNoDelay(bfd);
		if (connect(bfd, (struct sockaddr *)&r->backend, sizeof r->backend) < 0 && errno != EINPROGRESS) {
			close(cfd);
			close(bfd);
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c)
			die("calloc");
		for (int i = 0; i < 2; i++) {
			c->s[i].c = c;
			c->s[i].pipe[0] = c->s[i].pipe[1] = -1;
		}
		c->s[0].fd = cfd;
		c->s[1].fd = bfd;
		add(ep, cfd, &c->s[0]);
		add(ep, bfd, &c->s[1]);
	}
}

// Listener tokens are the route's index + 1 cast to a pointer below this.
#define LNTOK ((void *)(uintptr_t)4096)

static void *run(void *arg) {
	(void)arg;
	int ep = epoll_create1(EPOLL_CLOEXEC), lns[MAXROUTES];
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < nroutes; i++) {
		lns[i] = listenOn(&routes[i], SOCK_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = (void *)(uintptr_t)(i + 1)};
		epoll_ctl(ep, EPOLL_CTL_ADD, lns[i], &ev);
	}
	static __thread char buf[BUFSZ];
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		struct conn *dead = NULL;
		for (int i = 0; i < n; i++) {
			void *tok = evs[i].data.ptr;
			if (tok < LNTOK) {
				int r = (int)(uintptr_t)tok - 1;
				accept1(ep, lns[r], &routes[r]);
				continue;
			}
			struct side *s = tok;
			if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				s->rdhup = 1;
			if (!s->c->dead)
				serve(s->c, buf, &dead);
		}
		while (dead) {
			struct conn *next = dead->nextDead;
			free(dead->s[0].pend);
			free(dead->s[1].pend);
			free(dead);
			dead = next;
		}
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (parseArgs(argc, argv, &splicing) < 0) {
		fprintf(stderr, "usage: forward [-t threads] [-s] listen=backend ...\n");
		return 2;
	}
	runThreads(run);
	return 0;
}
