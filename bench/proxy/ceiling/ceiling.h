// ceiling.h is what forward.c and uring.c share: their command line
// (`[-t threads] [-s] listen=backend ...`, IPv4 a.b.c.d:port), the
// listeners (one per route and thread, SO_REUSEPORT) and the threads.
#ifndef CEILING_H
#define CEILING_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAXROUTES 16
#define MAXTHREADS 64

struct route {
	struct sockaddr_in listen, backend;
};

static struct route routes[MAXROUTES];
static int nroutes, nthreads = 1;

static void die(const char *what) {
	perror(what);
	exit(1);
}

static int parseAddr(const char *s, struct sockaddr_in *a) {
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || colon - s >= (long)sizeof host)
		return -1;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons(atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

// parseArgs reads the command line into routes, nroutes and nthreads, and
// -s into *splicing when splicing is not NULL. It returns -1 on a mistake.
static int parseArgs(int argc, char **argv, int *splicing) {
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (splicing && !strcmp(argv[i], "-s"))
			*splicing = 1;
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else
			return -1;
	}
	for (; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || nroutes == MAXROUTES)
			return -1;
		*eq = 0;
		if (parseAddr(argv[i], &routes[nroutes].listen) || parseAddr(eq + 1, &routes[nroutes].backend))
			return -1;
		nroutes++;
	}
	return nroutes == 0 || nthreads < 1 || nthreads > MAXTHREADS ? -1 : 0;
}

// listenOn opens route r's listener for one thread: flags are socket(2)'s
// type flags (SOCK_NONBLOCK or 0).
static int listenOn(struct route *r, int flags) {
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&r->listen, sizeof r->listen) < 0)
		die("bind");
	if (listen(fd, 4096) < 0)
		die("listen");
	return fd;
}

// runThreads runs run on nthreads threads, this one included, ignoring
// SIGPIPE.
static void runThreads(void *(*run)(void *)) {
	signal(SIGPIPE, SIG_IGN);
	pthread_t t[MAXTHREADS];
	for (int k = 1; k < nthreads; k++)
		if (pthread_create(&t[k], NULL, run, NULL))
			die("pthread_create");
	run(NULL);
}

#endif
