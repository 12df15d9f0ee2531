/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * It runs as PID 1 of the sandbox, so it reaps every child re-parented to it
 * (zombies would otherwise pile up when containers share the pod's PID
 * namespace), and it exits with status 0 on SIGINT or SIGTERM, which is how the
 * runtime stops a sandbox. Built by pyk8s/kubelet/images.py with `gcc -static`
 * into the `registry.k8s.io/pause` image; it needs nothing else in the image.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.9-pyk8s"

static void on_stop(int signo) {
  (void)signo;
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int install(int signo, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = (signo == SIGCHLD) ? (SA_NOCLDSTOP | SA_RESTART) : SA_RESTART;
  return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("pause version %s\n", VERSION);
    return 0;
  }
  if (getpid() != 1) {
    /* Not fatal, as upstream: it still holds namespaces, it just reaps less. */
    fprintf(stderr, "Warning: pause should be the first process\n");
  }
  if (install(SIGINT, on_stop) < 0 || install(SIGTERM, on_stop) < 0 ||
      install(SIGCHLD, on_child) < 0) {
    perror("sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
  /* not reached */
  return 42;
}
