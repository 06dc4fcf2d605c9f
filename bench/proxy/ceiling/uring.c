// uring is forward.c's twin on io_uring, for the request tests: what a
// user-space forwarder reaches when system calls are batched, with no
// readiness round-trip (liburing; a ring per thread with
// IORING_SETUP_SINGLE_ISSUER, DEFER_TASKRUN and COOP_TASKRUN, a multishot
// accept per SO_REUSEPORT listener, an asynchronous connect, then per
// direction a recv into the side's buffer and a send of what it got, with
// MSG_WAITALL so that a short send is finished by the kernel). Every
// submission waits for the next io_uring_enter, which also reaps the
// completions. EOF is passed on as shutdown(SHUT_WR); an error shuts both
// sockets down and frees the connection once its last operation completes.
// It has no features and no splice; like forward.c it is measured, not
// deployed.
//
//	uring [-t threads] listen=backend ...
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <unistd.h>

#include "ceiling.h"

#define BUFSZ 16384

struct conn;

struct side {
	int fd;
	int eof;
	struct conn *c;
	char buf[BUFSZ];
};

struct conn {
	struct side s[2]; // 0: client, 1: backend
	int refs;         // operations in flight
	int dead;
	struct route *r;
};

// An operation's user data: a pointer (8-byte aligned) and its kind in
// the low bits; a listener's accept carries its route index instead.
enum { OP_ACCEPT, OP_CONNECT, OP_RECV, OP_SEND };

static struct io_uring_sqe *getSQE(struct io_uring *ring) {
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		if (!(sqe = io_uring_get_sqe(ring)))
			die("io_uring_get_sqe");
	}
	return sqe;
}

static void tag(struct io_uring_sqe *sqe, void *p, int op) {
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | op);
}

static void recvOn(struct io_uring *ring, struct side *s) {
	struct io_uring_sqe *sqe = getSQE(ring);
	io_uring_prep_recv(sqe, s->fd, s->buf, BUFSZ, 0);
	tag(sqe, s, OP_RECV);
	s->c->refs++;
}

static struct side *peerOf(struct side *x) {
	return x == &x->c->s[0] ? &x->c->s[1] : &x->c->s[0];
}

// fail shuts both sockets down, which ends the operations in flight; the
// last one's completion frees the connection.
static void fail(struct conn *c) {
	if (c->dead)
		return;
	c->dead = 1;
	shutdown(c->s[0].fd, SHUT_RDWR);
	shutdown(c->s[1].fd, SHUT_RDWR);
}

static void release(struct conn *c) {
	if (--c->refs > 0 || !(c->dead || (c->s[0].eof && c->s[1].eof)))
		return;
	close(c->s[0].fd);
	close(c->s[1].fd);
	free(c);
}

static void accepted(struct io_uring *ring, int fd, struct route *r) {
	int one = 1;
	int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b < 0) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct conn *c = aligned_alloc(8, sizeof *c);
	if (!c)
		die("aligned_alloc");
	memset(c, 0, sizeof *c);
	c->r = r;
	c->s[0].fd = fd;
	c->s[1].fd = b;
	c->s[0].c = c->s[1].c = c;
	struct io_uring_sqe *sqe = getSQE(ring);
	io_uring_prep_connect(sqe, b, (struct sockaddr *)&r->backend, sizeof r->backend);
	tag(sqe, c, OP_CONNECT);
	c->refs++;
}

static void complete(struct io_uring *ring, struct io_uring_cqe *cqe, int *lns) {
	uint64_t d = io_uring_cqe_get_data64(cqe);
	int op = d & 7, res = cqe->res;
	if (op == OP_ACCEPT) {
		int ri = (int)(d >> 3);
		if (res >= 0)
			accepted(ring, res, &routes[ri]);
		if (!(cqe->flags & IORING_CQE_F_MORE)) {
			struct io_uring_sqe *sqe = getSQE(ring);
			io_uring_prep_multishot_accept(sqe, lns[ri], NULL, NULL, SOCK_CLOEXEC);
			io_uring_sqe_set_data64(sqe, (uint64_t)ri << 3 | OP_ACCEPT);
		}
		return;
	}
	if (op == OP_CONNECT) {
		struct conn *c = (struct conn *)(uintptr_t)(d & ~7ULL);
		if (res < 0)
			fail(c);
		else {
			recvOn(ring, &c->s[0]);
			recvOn(ring, &c->s[1]);
		}
		release(c);
		return;
	}
	struct side *s = (struct side *)(uintptr_t)(d & ~7ULL);
	struct conn *c = s->c;
	if (c->dead) {
		release(c);
		return;
	}
	if (op == OP_RECV) {
		if (res > 0) {
			struct io_uring_sqe *sqe = getSQE(ring);
			io_uring_prep_send(sqe, peerOf(s)->fd, s->buf, res, MSG_WAITALL | MSG_NOSIGNAL);
			tag(sqe, s, OP_SEND);
			c->refs++;
		} else if (res == 0) {
			s->eof = 1;
			shutdown(peerOf(s)->fd, SHUT_WR);
		} else
			fail(c);
	} else { // OP_SEND
		if (res < 0)
			fail(c);
		else
			recvOn(ring, s);
	}
	release(c);
}

static void *run(void *arg) {
	(void)arg;
	struct io_uring ring;
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
	int err = io_uring_queue_init_params(4096, &ring, &p);
	if (err < 0) {
		errno = -err;
		die("io_uring_queue_init_params");
	}
	int lns[MAXROUTES];
	for (int i = 0; i < nroutes; i++) {
		lns[i] = listenOn(&routes[i], 0);
		struct io_uring_sqe *sqe = getSQE(&ring);
		io_uring_prep_multishot_accept(sqe, lns[i], NULL, NULL, SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, (uint64_t)i << 3 | OP_ACCEPT);
	}
	for (;;) {
		int n = io_uring_submit_and_wait(&ring, 1);
		if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
			errno = -n;
			die("io_uring_submit_and_wait");
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			complete(&ring, cqe, lns);
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (parseArgs(argc, argv, NULL) < 0) {
		fprintf(stderr, "usage: uring [-t threads] listen=backend ...\n");
		return 2;
	}
	runThreads(run);
	return 0;
}
