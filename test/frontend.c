/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fake QEMU of the integration tests (fe_*).  See frontend.h; the
 * daemon it talks to is started by daemon.c.
 *
 * Everything here has a timeout: a daemon that stops answering makes a
 * test fail, never hang.  Every fd is created close-on-exec, so that a
 * daemon started later inherits only what a test hands it on purpose.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frontend.h"
#include "sendfds.h"

#define REPLY_TIMEOUT_MS	3000
/* Byte the part of a memfd before mmap_offset is filled with. */
#define PREFIX_BYTE		0xee

static char errbuf[1024];

void
fe_seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

const char *
fe_errstr(void)
{
	return errbuf;
}

int64_t
fe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
fe_now_ms(void)
{
	return fe_now_ns() / 1000000;
}

void
fe_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Milliseconds left until deadline, at least 0. */
static int
left_ms(int64_t deadline)
{
	int64_t l = deadline - fe_now_ms();

	return l < 0 ? 0 : (int)l;
}

/* ---- messages ------------------------------------------------------ */

void
fe_cfg_init(struct fe_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->qsize = 256;
	c->mem_size = 4u << 20;
	/* Neither 0 nor the uva: a gpa/uva mix-up cannot go unnoticed. */
	c->gpa = 0x40000000ull;
	c->uva = 0x7f3a00000000ull;
	c->nregions = 1;
	c->indirect = true;
	c->protocol = true;
	c->reply_ack = true;
	c->enable = true;
	c->start = true;
}

void
fe_init(struct fe *fe)
{
	memset(fe, 0, sizeof(*fe));
	fe->sock = fe->kick = fe->call = fe->err = -1;
}

int
fe_connect(struct fe *fe, const char *path, int timeout_ms)
{
	struct sockaddr_un sun;
	int64_t deadline = fe_now_ms() + timeout_ms;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fe_seterr("socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		close(fd);
		if ((errno != ENOENT && errno != ECONNREFUSED &&
		    errno != EAGAIN) || fe_now_ms() >= deadline) {
			fe_seterr("connect %s: %s", path, strerror(errno));
			return -1;
		}
		fe_sleep_ms(5);
	}
	fe->sock = fd;
	return 0;
}

void
fe_attach(struct fe *fe, int sock)
{
	fe->sock = sock;
}

int
fe_send_bytes(struct fe *fe, const void *buf, size_t len, const int *fds,
    unsigned nfds)
{
	struct iovec iov = { (void *)(uintptr_t)buf, len };
	ssize_t n;

	if (nfds > 16) {
		fe_seterr("too many fds");
		return -1;
	}
	n = send_fds(fe->sock, &iov, 1, fds, nfds);
	if (n < 0) {
		fe_seterr("sendmsg: %s", strerror(errno));
		return -1;
	}
	if ((size_t)n != len) {
		fe_seterr("short sendmsg (%zd of %zu)", n, len);
		return -1;
	}
	return 0;
}

int
fe_send(struct fe *fe, uint32_t req, uint32_t flags, const void *payload,
    uint32_t size, const int *fds, unsigned nfds)
{
	struct fe_msg m;

	if (size > sizeof(m.p)) {
		fe_seterr("payload too large for fe_send");
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.hdr.request = req;
	m.hdr.flags = flags;
	m.hdr.size = size;
	if (size > 0 && payload != NULL)
		memcpy(&m.p, payload, size);
	return fe_send_bytes(fe, &m, sizeof(m.hdr) + size, fds, nfds);
}

/* Reads exactly len bytes before the deadline; -2 on EOF at offset 0. */
static int
read_deadline(int fd, void *buf, size_t len, int64_t deadline)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		int r = poll(&pfd, 1, left_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fe_seterr("no reply within the timeout (%zu of %zu "
			    "bytes)", got, len);
			return -1;
		}
		n = recv(fd, p + got, len - got, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			fe_seterr("connection closed by the daemon (%zu of %zu "
			    "bytes)", got, len);
			return got == 0 ? -2 : -1;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fe_seterr("recv: %s", strerror(errno));
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

int
fe_recv(struct fe *fe, struct fe_msg *m, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = read_deadline(fe->sock, &m->hdr, sizeof(m->hdr),
	    deadline)) < 0)
		return r;
	if (m->hdr.size > sizeof(m->p)) {
		fe_seterr("reply with a %u-byte payload", m->hdr.size);
		return -1;
	}
	if (m->hdr.size > 0 && read_deadline(fe->sock, &m->p, m->hdr.size,
	    deadline) < 0)
		return -1;
	/* vhost-user.rst: replies carry version 1 and the reply flag. */
	if ((m->hdr.flags & 0x3) != FE_FLAG_VERSION ||
	    !(m->hdr.flags & FE_FLAG_REPLY)) {
		fe_seterr("reply to %u with flags 0x%x", m->hdr.request,
		    m->hdr.flags);
		return -1;
	}
	return 0;
}

bool
fe_peer_closed(struct fe *fe, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	struct pollfd pfd = { fe->sock, POLLIN, 0 };
	char buf[512];
	ssize_t n;

	for (;;) {
		int r = poll(&pfd, 1, left_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fe_seterr("connection still open after %d ms",
			    timeout_ms);
			return false;
		}
		n = recv(fe->sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fe_seterr("recv: %s", strerror(errno));
			return false;
		}
		/* A reply we did not wait for: keep reading. */
	}
}

int
fe_get_u64(struct fe *fe, uint32_t req, uint64_t *out)
{
	struct fe_msg m;

	if (fe_send(fe, req, FE_FLAG_VERSION, NULL, 0, NULL, 0) < 0)
		return -1;
	if (fe_recv(fe, &m, REPLY_TIMEOUT_MS) < 0)
		return -1;
	if (m.hdr.request != req || m.hdr.size != 8) {
		fe_seterr("request %u: reply %u of %u bytes", req,
		    m.hdr.request, m.hdr.size);
		return -1;
	}
	*out = m.p.u64;
	return 0;
}

int
fe_request(struct fe *fe, uint32_t req, const void *payload, uint32_t size,
    const int *fds, unsigned nfds, bool need_reply)
{
	struct fe_msg m;

	if (fe_send(fe, req, FE_FLAG_VERSION | (need_reply ?
	    FE_FLAG_NEED_REPLY : 0), payload, size, fds, nfds) < 0)
		return -1;
	if (!need_reply)
		return 0;
	if (fe_recv(fe, &m, REPLY_TIMEOUT_MS) < 0)
		return -1;
	if (m.hdr.request != req || m.hdr.size != 8) {
		fe_seterr("request %u: ack %u of %u bytes", req, m.hdr.request,
		    m.hdr.size);
		return -1;
	}
	if (m.p.u64 != 0) {
		fe_seterr("request %u: nack %llu", req,
		    (unsigned long long)m.p.u64);
		return 1;
	}
	return 0;
}

int
fe_set_u64(struct fe *fe, uint32_t req, uint64_t v, bool need_reply)
{
	return fe_request(fe, req, &v, sizeof(v), NULL, 0, need_reply);
}

int
fe_set_state(struct fe *fe, uint32_t req, uint32_t index, uint32_t num,
    bool need_reply)
{
	struct fe_vring_state s = { index, num };

	return fe_request(fe, req, &s, sizeof(s), NULL, 0, need_reply);
}

int
fe_sync(struct fe *fe)
{
	uint64_t f;

	return fe_get_u64(fe, FE_GET_FEATURES, &f);
}

int
fe_get_vring_base(struct fe *fe, uint32_t *base)
{
	struct fe_vring_state s = { 0, 0 };
	struct fe_msg m;

	if (fe_send(fe, FE_GET_VRING_BASE, FE_FLAG_VERSION, &s, sizeof(s),
	    NULL, 0) < 0)
		return -1;
	if (fe_recv(fe, &m, REPLY_TIMEOUT_MS) < 0)
		return -1;
	if (m.hdr.request != FE_GET_VRING_BASE || m.hdr.size != sizeof(s) ||
	    m.p.state.index != 0) {
		fe_seterr("GET_VRING_BASE: reply %u of %u bytes, index %u",
		    m.hdr.request, m.hdr.size, m.p.state.index);
		return -1;
	}
	*base = m.p.state.num;
	return 0;
}

static bool
acking(const struct fe *fe)
{
	return (fe->acked_pf & FE_BIT(FE_PF_REPLY_ACK)) != 0;
}

static bool
protocol_on(const struct fe *fe)
{
	return (fe->acked & FE_BIT(FE_F_PROTOCOL_FEATURES)) != 0;
}

int
fe_ring_stop(struct fe *fe, uint32_t *base)
{
	if (protocol_on(fe) && fe_set_state(fe, FE_SET_VRING_ENABLE, 0, 0,
	    acking(fe)) != 0)
		return -1;
	return fe_get_vring_base(fe, base);
}

/* ---- guest memory -------------------------------------------------- */

uint8_t
fe_canary_at(uint64_t gpa)
{
	/* Varies with the address, so a misplaced copy shows too. */
	return (uint8_t)(0xa5 ^ (gpa * 0x9d) ^ (gpa >> 9));
}

static struct fe_region *
region_of(const struct fe *fe, uint64_t gpa)
{
	unsigned i;

	for (i = 0; i < fe->nreg; i++) {
		const struct fe_region *r = &fe->reg[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (struct fe_region *)r;
	}
	return NULL;
}

void *
fe_host(const struct fe *fe, uint64_t gpa)
{
	struct fe_region *r = region_of(fe, gpa);

	return r == NULL ? NULL : r->host + (gpa - r->gpa);
}

void
fe_canary_fill(struct fe *fe, uint64_t gpa, uint64_t len)
{
	uint64_t i;

	for (i = 0; i < len; i++) {
		uint8_t *p = fe_host(fe, gpa + i);

		if (p != NULL)
			*p = fe_canary_at(gpa + i);
	}
}

uint64_t
fe_canary_count(const struct fe *fe, uint64_t gpa, uint64_t len)
{
	uint64_t i, n = 0;

	for (i = 0; i < len; i++) {
		const uint8_t *p = fe_host(fe, gpa + i);

		if (p != NULL && *p == fe_canary_at(gpa + i))
			n++;
	}
	return n;
}

static int
cmp_buf(const void *a, const void *b)
{
	const struct fe_buf *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static uint64_t
damage_in(const struct fe_region *r, uint64_t from, uint64_t to,
    uint64_t *first)
{
	uint64_t g, n = 0;

	for (g = from; g < to; g++)
		if (r->host[g - r->gpa] != fe_canary_at(g)) {
			if (n++ == 0 && *first == UINT64_MAX)
				*first = g;
		}
	return n;
}

uint64_t
fe_canary_damage(const struct fe *fe, const struct fe_buf *holes,
    unsigned nholes, uint64_t *first)
{
	struct fe_buf *ex;
	uint64_t n = 0, dummy;
	unsigned i, j;

	if (first == NULL)
		first = &dummy;
	*first = UINT64_MAX;
	ex = calloc(nholes + 1, sizeof(*ex));
	if (ex == NULL)
		return UINT64_MAX;
	if (nholes > 0)
		memcpy(ex, holes, nholes * sizeof(*ex));
	/* The rings are ours and the daemon's to write. */
	ex[nholes].gpa = fe->desc_gpa;
	ex[nholes].len = (uint32_t)(fe->ring_end_gpa - fe->desc_gpa);
	qsort(ex, nholes + 1, sizeof(*ex), cmp_buf);
	for (i = 0; i < fe->nreg; i++) {
		const struct fe_region *r = &fe->reg[i];
		uint64_t cur = r->gpa, end = r->gpa + r->size, k;

		for (j = 0; j <= nholes; j++) {
			uint64_t hs = ex[j].gpa, he = ex[j].gpa + ex[j].len;

			if (he <= cur || hs >= end)
				continue;
			if (hs > cur)
				n += damage_in(r, cur, hs, first);
			cur = he;
		}
		if (cur < end)
			n += damage_in(r, cur, end, first);
		/* The memfd before mmap_offset is not guest memory at all. */
		for (k = 0; k < r->mmap_offset; k++)
			if (r->map[k] != PREFIX_BYTE)
				n++;
	}
	free(ex);
	return n;
}

int
fe_read_mem(const struct fe *fe, uint64_t gpa, void *out, size_t len)
{
	uint8_t *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		const uint8_t *p = fe_host(fe, gpa + i);

		if (p == NULL)
			return -1;
		o[i] = *p;
	}
	return 0;
}

int
fe_write_mem(struct fe *fe, uint64_t gpa, const void *in, size_t len)
{
	const uint8_t *s = in;
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t *p = fe_host(fe, gpa + i);

		if (p == NULL)
			return -1;
		*p = s[i];
	}
	return 0;
}

uint64_t
fe_alloc(struct fe *fe, uint64_t len, uint64_t align)
{
	uint64_t g = fe->heap, end = fe->cfg.gpa + fe->cfg.mem_size;

	/* The heap is the memory fe_mem_create() made (contiguous). */
	if (align > 1)
		g = (g + align - 1) & ~(align - 1);
	if (g > end || len > end - g) {
		fe_seterr("guest memory heap exhausted");
		return UINT64_MAX;
	}
	fe->heap = g + len;
	return g;
}

int
fe_mem_create(struct fe *fe, const struct fe_cfg *c)
{
	uint64_t per, off;
	unsigned i;

	fe->cfg = *c;
	if (c->nregions == 0 || c->nregions > FE_MAX_REGIONS ||
	    c->mem_size % c->nregions != 0) {
		fe_seterr("bad region count");
		return -1;
	}
	per = c->mem_size / c->nregions;
	for (i = 0; i < c->nregions; i++) {
		struct fe_region *r = &fe->reg[i];
		void *p;

		r->fd = memfd_create("vrng-it-guest", MFD_CLOEXEC);
		if (r->fd < 0 || ftruncate(r->fd, (off_t)(c->mmap_offset +
		    per)) < 0) {
			fe_seterr("memfd: %s", strerror(errno));
			return -1;
		}
		p = mmap(NULL, c->mmap_offset + per, PROT_READ | PROT_WRITE,
		    MAP_SHARED, r->fd, 0);
		if (p == MAP_FAILED) {
			fe_seterr("mmap: %s", strerror(errno));
			return -1;
		}
		r->map = p;
		r->host = r->map + c->mmap_offset;
		r->mmap_offset = c->mmap_offset;
		r->size = per;
		/* Adjacent in guest-physical space... */
		r->gpa = c->gpa + i * per;
		/* ...but not in the front-end's address space. */
		r->uva = c->uva + ((uint64_t)i << 40);
		memset(r->map, PREFIX_BYTE, c->mmap_offset);
		fe->nreg = i + 1;
	}
	fe_canary_fill(fe, c->gpa, c->mem_size);

	/* Rings after a canary page, tightly packed as VIRTIO allows. */
	fe->qsize = c->qsize;
	fe->desc_gpa = c->gpa + 4096;
	fe->avail_gpa = fe->desc_gpa + 16ull * c->qsize;
	off = fe->avail_gpa + 6 + 2ull * c->qsize;
	fe->used_gpa = (off + 3) & ~3ull;
	fe->ring_end_gpa = fe->used_gpa + 6 + 8ull * c->qsize;
	if (fe->ring_end_gpa - c->gpa > per) {
		fe_seterr("rings do not fit region 0");
		return -1;
	}
	fe->desc = fe_host(fe, fe->desc_gpa);
	fe->avail = fe_host(fe, fe->avail_gpa);
	fe->used = fe_host(fe, fe->used_gpa);
	fe->shadow = calloc(c->qsize, sizeof(*fe->shadow));
	if (fe->shadow == NULL) {
		fe_seterr("out of memory");
		return -1;
	}
	fe->heap_start = fe->heap = ((fe->ring_end_gpa + 4095) & ~4095ull) +
	    4096;

	fe->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fe->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fe->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fe->kick < 0 || fe->call < 0 || fe->err < 0) {
		fe_seterr("eventfd: %s", strerror(errno));
		return -1;
	}
	fe_ring_reset(fe, 0);
	return 0;
}

int
fe_add_region(struct fe *fe, uint64_t gpa, uint64_t size, uint64_t uva)
{
	struct fe_region *r;
	void *p;

	if (fe->nreg >= FE_MAX_REGIONS) {
		fe_seterr("no room for another region");
		return -1;
	}
	r = &fe->reg[fe->nreg];
	memset(r, 0, sizeof(*r));
	r->fd = memfd_create("vrng-it-hotplug", MFD_CLOEXEC);
	if (r->fd < 0 || ftruncate(r->fd, (off_t)size) < 0) {
		fe_seterr("memfd: %s", strerror(errno));
		return -1;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (p == MAP_FAILED) {
		fe_seterr("mmap: %s", strerror(errno));
		close(r->fd);
		return -1;
	}
	r->map = r->host = p;
	r->gpa = gpa;
	r->size = size;
	r->uva = uva;
	fe->nreg++;
	fe_canary_fill(fe, gpa, size);
	return (int)fe->nreg - 1;
}

/* ---- the ring ------------------------------------------------------ */

void
fe_ring_reset(struct fe *fe, uint16_t base)
{
	unsigned i;

	memset((void *)fe->desc, 0, fe->ring_end_gpa - fe->desc_gpa);
	for (i = 0; i < fe->qsize; i++)
		fe->shadow[i].next = (uint16_t)(i + 1);
	fe->free_head = 0;
	fe->nfree = fe->qsize;
	fe->avail_idx = fe->used_idx = base;
	fe->avail[1] = base;
	fe->used[1] = base;
}

static void
region_msg(const struct fe_region *r, struct fe_mem_region *m)
{
	m->gpa = r->gpa;
	m->size = r->size;
	m->uva = r->uva;
	m->mmap_offset = r->mmap_offset;
}

static uint64_t
uva_of(const struct fe *fe, uint64_t gpa)
{
	const struct fe_region *r = region_of(fe, gpa);

	return r->uva + (gpa - r->gpa);
}

int
fe_ring_start(struct fe *fe, uint16_t base)
{
	struct fe_vring_addr a;
	uint64_t kick = 0;
	bool ack = acking(fe);

	memset(&a, 0, sizeof(a));
	a.desc = uva_of(fe, fe->desc_gpa);
	a.avail = uva_of(fe, fe->avail_gpa);
	a.used = uva_of(fe, fe->used_gpa);
	if (fe_set_state(fe, FE_SET_VRING_NUM, 0, fe->qsize, ack) != 0 ||
	    fe_set_state(fe, FE_SET_VRING_BASE, 0, base, ack) != 0 ||
	    fe_request(fe, FE_SET_VRING_ADDR, &a, sizeof(a), NULL, 0,
	    ack) != 0 ||
	    fe_request(fe, FE_SET_VRING_KICK, &kick, 8, &fe->kick, 1,
	    ack) != 0)
		return -1;
	if (fe->cfg.enable && protocol_on(fe) &&
	    fe_set_state(fe, FE_SET_VRING_ENABLE, 0, 1, ack) != 0)
		return -1;
	return 0;
}

int
fe_send_mem_table(struct fe *fe)
{
	struct fe_mem_table t;
	int fds[FE_MAX_REGIONS];
	unsigned i;

	memset(&t, 0, sizeof(t));
	t.nregions = fe->nreg;
	for (i = 0; i < fe->nreg; i++) {
		region_msg(&fe->reg[i], &t.regions[i]);
		fds[i] = fe->reg[i].fd;
	}
	return fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 32 * fe->nreg, fds,
	    fe->nreg, acking(fe));
}

int
fe_send_add_region(struct fe *fe, unsigned i)
{
	struct fe_mem_single s;

	memset(&s, 0, sizeof(s));
	region_msg(&fe->reg[i], &s.region);
	return fe_request(fe, FE_ADD_MEM_REG, &s, sizeof(s), &fe->reg[i].fd, 1,
	    acking(fe));
}

int
fe_send_rem_region(struct fe *fe, unsigned i)
{
	struct fe_mem_single s;

	memset(&s, 0, sizeof(s));
	region_msg(&fe->reg[i], &s.region);
	return fe_request(fe, FE_REM_MEM_REG, &s, sizeof(s), NULL, 0,
	    acking(fe));
}

int
fe_setup(struct fe *fe, const struct fe_cfg *c)
{
	struct fe_cfg defaults;
	uint64_t v = 0, want_pf;
	bool ack;
	unsigned i;

	if (c == NULL) {
		fe_cfg_init(&defaults);
		c = &defaults;
	}
	if (fe->nreg == 0 && fe_mem_create(fe, c) < 0)
		return -1;
	fe->cfg = *c;

	/* QEMU 7.2, vhost_user_backend_init() and vhost_dev_init(). */
	if (fe_get_u64(fe, FE_GET_FEATURES, &fe->offered) < 0)
		return -1;
	if (c->protocol && (fe->offered & FE_BIT(FE_F_PROTOCOL_FEATURES))) {
		if (fe_get_u64(fe, FE_GET_PROTOCOL_FEATURES,
		    &fe->offered_pf) < 0)
			return -1;
		want_pf = FE_BIT(FE_PF_MQ) | FE_BIT(FE_PF_RESET_DEVICE);
		if (c->reply_ack)
			want_pf |= FE_BIT(FE_PF_REPLY_ACK);
		if (c->add_mem_reg)
			want_pf |= FE_BIT(FE_PF_CONFIGURE_MEM_SLOTS);
		fe->acked_pf = fe->offered_pf & want_pf;
		if (fe_set_u64(fe, FE_SET_PROTOCOL_FEATURES, fe->acked_pf,
		    false) != 0)
			return -1;
		if ((fe->acked_pf & FE_BIT(FE_PF_MQ)) &&
		    fe_get_u64(fe, FE_GET_QUEUE_NUM, &fe->queue_num) < 0)
			return -1;
		if ((fe->acked_pf & FE_BIT(FE_PF_CONFIGURE_MEM_SLOTS)) &&
		    fe_get_u64(fe, FE_GET_MAX_MEM_SLOTS,
		    &fe->max_mem_slots) < 0)
			return -1;
	}
	ack = acking(fe);
	if (fe_request(fe, FE_SET_OWNER, NULL, 0, NULL, 0, ack) != 0 ||
	    fe_request(fe, FE_SET_VRING_CALL, &v, 8, &fe->call, 1, ack) != 0 ||
	    fe_request(fe, FE_SET_VRING_ERR, &v, 8, &fe->err, 1, ack) != 0)
		return -1;

	/* vhost_dev_start(). */
	fe->acked = FE_BIT(FE_F_VERSION_1);
	if (c->event_idx)
		fe->acked |= FE_BIT(FE_F_EVENT_IDX);
	if (c->indirect)
		fe->acked |= FE_BIT(FE_F_INDIRECT_DESC);
	if (c->protocol)
		fe->acked |= FE_BIT(FE_F_PROTOCOL_FEATURES);
	fe->acked &= fe->offered;
	if (fe_set_u64(fe, FE_SET_FEATURES, fe->acked, ack) != 0)
		return -1;
	if (c->add_mem_reg) {
		for (i = 0; i < fe->nreg; i++)
			if (fe_send_add_region(fe, i) != 0)
				return -1;
	} else if (fe_send_mem_table(fe) != 0)
		return -1;
	if (c->start)
		return fe_ring_start(fe, fe->avail_idx);
	return 0;
}

int
fe_open(struct fe *fe, const char *path, const struct fe_cfg *c)
{
	fe_init(fe);
	if (fe_connect(fe, path, 3000) < 0)
		return -1;
	return fe_setup(fe, c);
}

void
fe_disconnect(struct fe *fe)
{
	if (fe->sock >= 0)
		close(fe->sock);
	fe->sock = -1;
}

void
fe_close(struct fe *fe)
{
	unsigned i;

	fe_disconnect(fe);
	for (i = 0; i < fe->nreg; i++) {
		struct fe_region *r = &fe->reg[i];

		munmap(r->map, r->mmap_offset + r->size);
		close(r->fd);
	}
	fe->nreg = 0;
	if (fe->kick >= 0)
		close(fe->kick);
	if (fe->call >= 0)
		close(fe->call);
	if (fe->err >= 0)
		close(fe->err);
	fe->kick = fe->call = fe->err = -1;
	free(fe->shadow);
	fe->shadow = NULL;
}

unsigned
fe_free_descs(const struct fe *fe)
{
	return fe->nfree;
}

void
fe_write_desc(struct fe *fe, uint16_t i, uint64_t addr, uint32_t len,
    uint16_t flags, uint16_t next)
{
	volatile struct fe_desc *d = &fe->desc[i];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

void
fe_publish(struct fe *fe, uint16_t head)
{
	fe->avail[2 + fe->avail_idx % fe->qsize] = head;
	/* The entry must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	fe->avail_idx++;
	__atomic_store_n(&fe->avail[1], fe->avail_idx, __ATOMIC_RELEASE);
}

void
fe_set_avail_idx(struct fe *fe, uint16_t idx)
{
	fe->avail_idx = idx;
	__atomic_store_n(&fe->avail[1], idx, __ATOMIC_RELEASE);
}

/* Takes n descriptors off the free list, chained through .next. */
static int
take_descs(struct fe *fe, unsigned n, uint16_t *idx)
{
	unsigned i;
	uint16_t d = fe->free_head;

	if (n == 0 || n > fe->nfree) {
		fe_seterr("%u descriptors wanted, %u free", n, fe->nfree);
		return -1;
	}
	for (i = 0; i < n; i++) {
		idx[i] = d;
		d = fe->shadow[d].next;
	}
	fe->free_head = d;
	fe->nfree -= n;
	return 0;
}

int
fe_post(struct fe *fe, const struct fe_buf *b, unsigned n)
{
	uint16_t idx[1024];
	unsigned i;

	if (n > 1024 || take_descs(fe, n, idx) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct fe_desc d = { b[i].gpa, b[i].len, FE_DESC_F_WRITE,
		    0 };

		if (i + 1 < n) {
			d.flags |= FE_DESC_F_NEXT;
			d.next = idx[i + 1];
		}
		fe->shadow[idx[i]] = d;
		fe_write_desc(fe, idx[i], d.addr, d.len, d.flags, d.next);
	}
	fe_publish(fe, idx[0]);
	return idx[0];
}

int
fe_post1(struct fe *fe, uint64_t gpa, uint32_t len)
{
	struct fe_buf b = { gpa, len };

	return fe_post(fe, &b, 1);
}

int
fe_post_indirect(struct fe *fe, uint64_t table_gpa, const struct fe_buf *b,
    unsigned n)
{
	struct fe_desc d;
	uint16_t head;
	unsigned i;

	for (i = 0; i < n; i++) {
		d.addr = b[i].gpa;
		d.len = b[i].len;
		d.flags = FE_DESC_F_WRITE | (i + 1 < n ? FE_DESC_F_NEXT : 0);
		d.next = (uint16_t)(i + 1 < n ? i + 1 : 0);
		if (fe_write_mem(fe, table_gpa + 16ull * i, &d,
		    sizeof(d)) < 0) {
			fe_seterr("indirect table outside guest memory");
			return -1;
		}
	}
	if (take_descs(fe, 1, &head) < 0)
		return -1;
	d.addr = table_gpa;
	d.len = 16 * n;
	d.flags = FE_DESC_F_INDIRECT;
	d.next = 0;
	fe->shadow[head] = d;
	fe_write_desc(fe, head, d.addr, d.len, d.flags, d.next);
	fe_publish(fe, head);
	return head;
}

void
fe_kick(struct fe *fe)
{
	uint64_t one = 1;

	if (write(fe->kick, &one, sizeof(one)) < 0)
		fe_seterr("kick: %s", strerror(errno));
}

uint16_t
fe_used_idx(const struct fe *fe)
{
	return __atomic_load_n(&fe->used[1], __ATOMIC_ACQUIRE);
}

uint16_t
fe_used_pending(const struct fe *fe)
{
	return (uint16_t)(fe_used_idx(fe) - fe->used_idx);
}

static uint64_t
drain(int fd, uint64_t *total)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		*total += v;
	return *total;
}

uint64_t
fe_drain_calls(struct fe *fe)
{
	return drain(fe->call, &fe->ncalls);
}

uint64_t
fe_drain_errs(struct fe *fe)
{
	return drain(fe->err, &fe->nerrs);
}

bool
fe_wait_err(struct fe *fe, int timeout_ms)
{
	struct pollfd pfd = { fe->err, POLLIN, 0 };
	uint64_t before = fe->nerrs;

	if (fe_drain_errs(fe) > before)
		return true;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	return fe_drain_errs(fe) > before;
}

unsigned
fe_wait_used(struct fe *fe, unsigned n, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	struct pollfd pfd = { fe->call, POLLIN, 0 };

	for (;;) {
		unsigned pending = fe_used_pending(fe);
		int slice;

		if (pending >= n || fe_now_ms() >= deadline)
			return pending;
		/*
		 * The call eventfd wakes us early; the short slices catch
		 * completions the daemon was right not to signal.
		 */
		slice = left_ms(deadline);
		if (slice > 5)
			slice = 5;
		if (poll(&pfd, 1, slice) > 0)
			fe_drain_calls(fe);
	}
}

bool
fe_get_used(struct fe *fe, struct fe_used_elem *out)
{
	volatile struct fe_used_elem *ring;
	uint16_t id;

	if (fe_used_pending(fe) == 0)
		return false;
	ring = (volatile struct fe_used_elem *)(fe->used + 2);
	out->id = ring[fe->used_idx % fe->qsize].id;
	out->len = ring[fe->used_idx % fe->qsize].len;
	fe->used_idx++;
	/* Give the chain back to the free list (if the id is sane). */
	if (out->id < fe->qsize) {
		unsigned n = 1;

		id = (uint16_t)out->id;
		while ((fe->shadow[id].flags & FE_DESC_F_NEXT) &&
		    n < fe->qsize) {
			id = fe->shadow[id].next;
			n++;
		}
		fe->shadow[id].next = fe->free_head;
		fe->free_head = (uint16_t)out->id;
		fe->nfree += n;
		if (fe->nfree > fe->qsize)
			fe->nfree = fe->qsize;
	}
	return true;
}

uint16_t
fe_avail_event(const struct fe *fe)
{
	/* After the used ring's elements: 4 + 8 * qsize bytes in. */
	return __atomic_load_n(&fe->used[2 + 4 * fe->qsize],
	    __ATOMIC_ACQUIRE);
}

void
fe_set_used_event(struct fe *fe, uint16_t v)
{
	__atomic_store_n(&fe->avail[2 + fe->qsize], v, __ATOMIC_SEQ_CST);
}

void
fe_set_avail_flags(struct fe *fe, uint16_t v)
{
	__atomic_store_n(&fe->avail[0], v, __ATOMIC_SEQ_CST);
}

int
fe_serve_one(struct fe *fe, uint32_t len, int timeout_ms)
{
	struct fe_used_elem u;
	uint64_t gpa, same;
	int head;

	/* 64 canary bytes either side of the buffer. */
	gpa = fe_alloc(fe, len + 128, 64);
	if (gpa == UINT64_MAX)
		return -1;
	gpa += 64;
	fe_canary_fill(fe, gpa - 64, len + 128);
	if ((head = fe_post1(fe, gpa, len)) < 0)
		return -1;
	fe_kick(fe);
	if (fe_wait_used(fe, 1, timeout_ms) < 1) {
		fe_seterr("no completion within %d ms", timeout_ms);
		return -1;
	}
	fe_get_used(fe, &u);
	if (u.id != (uint32_t)head || u.len != len) {
		fe_seterr("used entry id %u len %u, expected id %d len %u",
		    u.id, u.len, head, len);
		return -1;
	}
	same = fe_canary_count(fe, gpa, len);
	if (same > len / 8 + 4) {
		fe_seterr("%llu of %u bytes still hold the canary",
		    (unsigned long long)same, len);
		return -1;
	}
	if (fe_canary_count(fe, gpa - 64, 64) != 64 ||
	    fe_canary_count(fe, gpa + len, 64) != 64) {
		fe_seterr("bytes around the buffer were written");
		return -1;
	}
	return 0;
}

int
fe_listen_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 4) < 0) {
		fe_seterr("listen %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

double
fe_jain(const double *x, unsigned n)
{
	double sum = 0, sq = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		sum += x[i];
		sq += x[i] * x[i];
	}
	return sq == 0 ? 0 : sum * sum / (n * sq);
}

void
fe_fill_prng(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed | 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}
