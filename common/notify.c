#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "util.h"

struct notify {
	int		   fd;
	struct sockaddr_un addr;
	socklen_t	   addrlen;
	int		   warned;
};

struct notify *
notify_open(void)
{
	const char    *path = getenv("NOTIFY_SOCKET");
	struct notify *n;
	size_t	       len;

	if (path == NULL || *path == '\0')
		return NULL;
	len = strlen(path);
	n = xcalloc(1, sizeof(*n));
	n->addr.sun_family = AF_UNIX;
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(n->addr.sun_path)) {
		logkv(LOG_WARN,
		    "NOTIFY_SOCKET is neither an absolute path nor an "
		    "abstract name that fits a socket address; not notifying",
		    (char *)NULL);
		free(n);
		unsetenv("NOTIFY_SOCKET");
		return NULL;
	}
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0';
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (path[0] == '/' ? 1 : 0));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd == -1) {
		logkv(LOG_WARN,
		    "cannot open a socket to notify the service "
		    "manager",
		    "error", strerror(errno), (char *)NULL);
		free(n);
		n = NULL;
	}
	/* Not for any process we might start. */
	unsetenv("NOTIFY_SOCKET");
	return n;
}

void
notify_close(struct notify *n)
{
	if (n == NULL)
		return;
	close(n->fd);
	free(n);
}

int
notify_send(struct notify *n, const char *msg)
{
	if (n == NULL)
		return 0;
	if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL,
		(struct sockaddr *)&n->addr, n->addrlen) >= 0) {
		n->warned = 0;
		return 0;
	}
	/* The manager is gone or busy: say so once per outage. */
	if (!n->warned++)
		logkv(LOG_WARN, "cannot notify the service manager", "error",
		    strerror(errno), (char *)NULL);
	return -1;
}

int64_t
notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char	   *end;
	long long   v;

	if (usec == NULL || *usec == '\0')
		return 0;
	if (pid != NULL && *pid != '\0') {
		errno = 0;
		v = strtoll(pid, &end, 10);
		if (errno != 0 || *end != '\0' || v != (long long)getpid())
			return 0;
	}
	errno = 0;
	v = strtoll(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return 0;
	return v;
}
